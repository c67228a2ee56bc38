"""Prefill and decode attention over a KV cache with per-row lengths vs a per-query loop (CPU)."""
from __future__ import annotations

import pytest
import torch

from helpers import assert_close
from nanovl.ops.attention import (causal_attention, decode_attention, decode_attention_ref, kv_cache_write,
                                  prefill_attention, prefill_attention_ref)
from nanovl.ops.attention.cpu import decode_attention_cpu, kv_cache_write_cpu, prefill_attention_cpu
from nanovl.ops.attention.ref import kv_cache_write_ref


def _loop(q, k, v, start_pos, scale):
    """Each query (row b, step t) attends keys 0..start_pos[b]+t with kv head = q head // group."""
    bsz, t_len, hq, _ = q.shape
    rep = hq // k.shape[1]
    out = torch.zeros(q.shape, dtype=torch.float64)
    for b in range(bsz):
        for t in range(t_len):
            n = int(start_pos[b]) + t + 1
            for h in range(hq):
                kk, vv = k[b, h // rep, :n].double(), v[b, h // rep, :n].double()
                w = torch.softmax(kk @ q[b, t, h].double() * scale, dim=0)
                out[b, t, h] = w @ vv
    return out


# the dispatcher (on a CPU: the SDPA twin), the twin by name, and the plain-math reference
PREFILL_FNS = {"dispatch": prefill_attention, "cpu_twin": prefill_attention_cpu, "ref": prefill_attention_ref}
DECODE_FNS = {"dispatch": decode_attention, "cpu_twin": decode_attention_cpu, "ref": decode_attention_ref}


@pytest.mark.parametrize("fn", PREFILL_FNS.values(), ids=PREFILL_FNS.keys())
@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (6, 1)], ids=["mha", "gqa2", "mqa"])
@pytest.mark.parametrize("t_len", [1, 5])
def test_prefill_attention(fn, hq, hkv, t_len):
    bsz, dh, cap = 3, 8, 20
    start = torch.tensor([0, 4, 11])
    q = torch.randn(bsz, t_len, hq, dh)
    k, v = torch.randn(bsz, hkv, cap, dh), torch.randn(bsz, hkv, cap, dh)
    out = fn(q, k, v, start, dh ** -0.5)
    assert_close("prefill", _loop(q, k, v, start, dh ** -0.5), out)
    # keys past each row's length are invisible
    k2, v2 = k.clone(), v.clone()
    for b in range(bsz):
        k2[b, :, int(start[b]) + t_len:] = 1e3
        v2[b, :, int(start[b]) + t_len:] = -1e3
    assert_close("tail_ignored", out, fn(q, k2, v2, start, dh ** -0.5), atol=0, rtol=0)


@pytest.mark.parametrize("fn", DECODE_FNS.values(), ids=DECODE_FNS.keys())
def test_decode_attention(fn):
    bsz, hq, hkv, dh, cap = 4, 4, 2, 8, 16
    seq_lens = torch.tensor([1, 5, 16, 9])
    q = torch.randn(bsz, hq, dh)
    k, v = torch.randn(bsz, hkv, cap, dh), torch.randn(bsz, hkv, cap, dh)
    out = fn(q, k, v, seq_lens, 0.3)
    assert_close("decode", _loop(q[:, None], k, v, seq_lens - 1, 0.3)[:, 0], out)


@pytest.mark.parametrize("cap", [9, 32], ids=["cache-full", "spare-capacity"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cpu_twin_matches_the_reference_from_position_zero(cap, dtype):
    # every row from 0 with the cache exactly full takes SDPA's causal path; spare capacity, its mask
    gen = torch.Generator().manual_seed(cap)
    q = torch.randn(2, 9, 4, 16, generator=gen).to(dtype)
    k, v = (torch.randn(2, 2, cap, 16, generator=gen).to(dtype) for _ in range(2))
    start = torch.zeros(2, dtype=torch.long)
    ref = prefill_attention_ref(q, k, v, start, 0.25)
    out = prefill_attention_cpu(q, k, v, start, 0.25)
    assert out.dtype == dtype and out.shape == ref.shape
    tol = 1e-5 if dtype == torch.float32 else 2e-2
    assert_close("twin", ref, out, atol=tol, rtol=tol)


def test_attention_bad_heads():
    with pytest.raises(ValueError, match="kv heads"):
        prefill_attention(torch.randn(1, 2, 3, 4), torch.randn(1, 2, 5, 4), torch.randn(1, 2, 5, 4),
                          torch.tensor([0]), 0.5)


@pytest.mark.parametrize("hq,hkv", [(4, 4), (4, 2), (6, 1)], ids=["mha", "gqa2", "mqa"])
@pytest.mark.parametrize("t_len", [1, 7, 33])
def test_causal_attention(hq, hkv, t_len):
    # the cache-free training attention == the cache reference from position 0 (values and gradients)
    bsz, dh = 2, 8
    gen = torch.Generator().manual_seed(t_len)
    q = torch.randn(bsz, t_len, hq, dh, generator=gen, requires_grad=True)
    k = torch.randn(bsz, hkv, t_len, dh, generator=gen, requires_grad=True)
    v = torch.randn(bsz, hkv, t_len, dh, generator=gen, requires_grad=True)
    w = torch.randn(bsz, t_len, hq, dh, generator=gen)
    out = causal_attention(q, k, v, dh ** -0.5)
    ref = prefill_attention_ref(q, k, v, torch.zeros(bsz, dtype=torch.long), dh ** -0.5)
    assert_close("out", ref, out, atol=1e-5, rtol=1e-5)
    assert_close("out_loop", _loop(q, k, v, [0] * bsz, dh ** -0.5), out, atol=1e-5, rtol=1e-5)
    grads = torch.autograd.grad((out * w).sum(), (q, k, v))
    ref_grads = torch.autograd.grad((ref * w).sum(), (q, k, v))
    for name, a, b in zip("qkv", ref_grads, grads):
        assert_close(f"d{name}", a, b, atol=1e-5, rtol=1e-5)


def test_kv_cache_write_puts_each_row_at_its_own_position():
    b, h, cap, dh, t = 3, 2, 10, 4, 2
    kc, vc = torch.zeros(b, h, cap, dh, dtype=torch.bfloat16), torch.zeros(b, h, cap, dh, dtype=torch.bfloat16)
    # new keys as the model makes them: [B, T, Hkv, Dh] transposed, so not contiguous; fp32 cast down
    k_new, v_new = torch.randn(b, t, h, dh).transpose(1, 2), torch.randn(b, t, h, dh).transpose(1, 2)
    start = torch.tensor([0, 5, 9])  # the last row runs past the capacity
    kv_cache_write(kc, vc, k_new, v_new, start)
    for row, s0 in enumerate([0, 5]):
        for i in range(t):
            assert torch.equal(kc[row, :, s0 + i], k_new[row, :, i].bfloat16())
            assert torch.equal(vc[row, :, s0 + i], v_new[row, :, i].bfloat16())
    # the last row's two tokens both land in the last slot (never out of bounds); which one stays
    # is unspecified, as with any indexed write of one place twice
    assert any(torch.equal(kc[2, :, cap - 1], k_new[2, :, i].bfloat16()) for i in range(t))
    assert any(torch.equal(vc[2, :, cap - 1], v_new[2, :, i].bfloat16()) for i in range(t))
    written = {(0, 0), (0, 1), (1, 5), (1, 6), (2, 9)}
    for row in range(b):
        for slot in range(cap):
            if (row, slot) not in written:
                assert not kc[row, :, slot].any() and not vc[row, :, slot].any(), (row, slot)


@pytest.mark.parametrize("start,t", [([3, 3], 1), ([0, 0], 4), ([6, 6], 3), ([2, 5], 2)],
                         ids=["decode", "prompt-from-0", "past-capacity", "ragged"])
def test_kv_cache_write_cpu_twin_equals_the_reference(start, t):
    # the twin's slice assignment (rows at one position) and its fallback (ragged, past the capacity)
    gen = torch.Generator().manual_seed(t)
    k_new, v_new = (torch.randn(2, t, 2, 4, generator=gen).transpose(1, 2) for _ in range(2))
    caches = []
    for fn in (kv_cache_write_ref, kv_cache_write_cpu):
        kc, vc = torch.zeros(2, 2, 8, 4, dtype=torch.bfloat16), torch.zeros(2, 2, 8, 4, dtype=torch.bfloat16)
        fn(kc, vc, k_new, v_new, torch.tensor(start))
        caches.append((kc, vc))
    assert all(torch.equal(a, b) for a, b in zip(*caches))


def test_kv_cache_write_refuses_shapes_that_do_not_fit():
    kc = vc = torch.zeros(2, 2, 8, 4)
    with pytest.raises(ValueError, match="kv_cache_write"):
        kv_cache_write(kc, vc, torch.zeros(2, 3, 1, 4), torch.zeros(2, 3, 1, 4), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="kv_cache_write"):
        kv_cache_write(kc, vc, torch.zeros(2, 2, 1, 4), torch.zeros(2, 2, 2, 4), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("cap", [7, 12], ids=["cache-full", "spare-capacity"])
def test_cpu_twin_decode_of_rows_of_one_length_needs_no_mask(cap):
    # every row at the same length (one request, or a batch in step): the twin's mask-free path
    gen = torch.Generator().manual_seed(cap)
    q = torch.randn(2, 4, 8, generator=gen)
    k, v = (torch.randn(2, 2, cap, 8, generator=gen) for _ in range(2))
    lens = torch.tensor([7, 7])
    assert_close("decode", decode_attention_ref(q, k, v, lens, 0.3), decode_attention_cpu(q, k, v, lens, 0.3))
