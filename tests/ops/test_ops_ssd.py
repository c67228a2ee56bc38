"""SSD chunk scan and one-token state update vs an independent token-by-token recurrence (CPU)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_close
from nanovl.ops.ssd import cpu as ssd_cpu
from nanovl.ops.ssd import (ssd_chunk_scan, ssd_chunk_scan_batched_ref, ssd_chunk_scan_ref, ssd_state_update,
                            ssd_state_update_ref)


def _recurrence(x, dt, A, B, C, D, dt_bias, state, dt_limit=(0.0, math.inf)):
    """The SPEC §2.6 recurrence written out per token, head and group in float64."""
    bsz, t_len, h, p = x.shape
    g = B.shape[2]
    state = state.double().clone()
    dt = F.softplus(dt.double() + dt_bias.double()).clamp(*dt_limit)
    ys = torch.zeros(bsz, t_len, h, p, dtype=torch.float64)
    for t in range(t_len):
        for head in range(h):
            grp = head // (h // g)
            decay = torch.exp(dt[:, t, head] * A[head].double())  # [B]
            upd = (dt[:, t, head, None] * x[:, t, head].double())[:, :, None] * B[:, t, grp].double()[:, None, :]
            state[:, head] = state[:, head] * decay[:, None, None] + upd
            ys[:, t, head] = (torch.einsum("bpn,bn->bp", state[:, head], C[:, t, grp].double())
                                  + D[head].double() * x[:, t, head].double())
    return ys, state


def _inputs(bsz, t_len, h, p, g, n, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    return dict(x=r(bsz, t_len, h, p), dt=r(bsz, t_len, h), A=-torch.rand(h, generator=gen) * 2 - 0.1,
                B=r(bsz, t_len, g, n), C=r(bsz, t_len, g, n), D=r(h), dt_bias=r(h) * 0.5)


CASES = [  # (T, chunk_size, groups)
    (1, 4, 1), (7, 4, 2), (8, 8, 1), (37, 8, 4), (63, 16, 2), (100, 32, 1), (5, 64, 2)]


@pytest.mark.parametrize("t_len,chunk,g", CASES, ids=[f"T{t}-chunk{c}-g{g}" for t, c, g in CASES])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
@pytest.mark.parametrize("fn", [ssd_chunk_scan, ssd_chunk_scan_ref, ssd_cpu.ssd_chunk_scan_cpu],
                         ids=["dispatch", "ref", "cpu_twin"])
def test_chunk_scan(t_len, chunk, g, with_state, fn):
    bsz, h, p, n = 2, 4, 3, 5
    inp = _inputs(bsz, t_len, h, p, g, n)
    init = torch.randn(bsz, h, p, n) if with_state else torch.zeros(bsz, h, p, n)
    ref_y, ref_state = _recurrence(**inp, state=init)
    y, state = fn(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], chunk, inp["D"], inp["dt_bias"],
                  initial_state=init.clone() if with_state else None)
    assert y.dtype == torch.float32 and state.dtype == torch.float32
    assert_close("y", ref_y, y, atol=1e-4, rtol=1e-4)
    assert_close("final_state", ref_state, state, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("chunks_per_block", [1, 2, 3])
def test_chunk_scan_cpu_twin_carries_the_state_across_blocks(monkeypatch, chunks_per_block):
    # a long prompt runs as several blocks of chunks; the state must pass from one block to the next
    bsz, h, p, n, chunk = 2, 4, 3, 5, 4
    monkeypatch.setattr(ssd_cpu, "BLOCK_BYTES", 4 * bsz * h * chunk * chunk * chunks_per_block)
    inp = _inputs(bsz, 30, h, p, 2, n, seed=chunks_per_block)
    init = torch.randn(bsz, h, p, n)
    ref_y, ref_state = _recurrence(**inp, state=init)
    y, state = ssd_cpu.ssd_chunk_scan_cpu(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], chunk, inp["D"],
                                          inp["dt_bias"], initial_state=init)
    assert_close("y", ref_y, y, atol=1e-4, rtol=1e-4)
    assert_close("final_state", ref_state, state, atol=1e-4, rtol=1e-4)
    # the reference's per-chunk loop, up to fp32 rounding
    loop_y, loop_state = ssd_chunk_scan_ref(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], chunk, inp["D"],
                                            inp["dt_bias"], initial_state=init)
    assert_close("twin_vs_ref_y", loop_y, y, atol=1e-6, rtol=1e-6)
    assert_close("twin_vs_ref_state", loop_state, state, atol=1e-6, rtol=1e-6)


def test_chunk_scan_dt_limit_clamps():
    inp = _inputs(1, 9, 2, 2, 1, 3, seed=3)
    limit = (0.3, 0.6)
    ref_y, _ = _recurrence(**inp, state=torch.zeros(1, 2, 2, 3), dt_limit=limit)
    y, _ = ssd_chunk_scan(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 4, inp["D"], inp["dt_bias"],
                          dt_limit=limit)
    assert_close("y_clamped", ref_y, y, atol=1e-4, rtol=1e-4)
    free, _ = ssd_chunk_scan(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 4, inp["D"], inp["dt_bias"])
    assert (free - y).abs().max() > 1e-3, "the clamp should change the output for these inputs"


@pytest.mark.parametrize("fn", [ssd_state_update, ssd_state_update_ref, ssd_cpu.ssd_state_update_cpu],
                         ids=["dispatch", "ref", "cpu_twin"])
@pytest.mark.parametrize("g", [1, 2, 4])
def test_state_update(g, fn):
    bsz, h, p, n, steps = 3, 4, 3, 5, 6
    inp = _inputs(bsz, steps, h, p, g, n, seed=g)
    init = torch.randn(bsz, h, p, n)
    ref_y, ref_state = _recurrence(**inp, state=init)
    state = init.clone()
    for t in range(steps):
        y = fn(state, inp["x"][:, t], inp["dt"][:, t], inp["A"], inp["B"][:, t], inp["C"][:, t],
                             inp["D"], inp["dt_bias"])
        assert_close(f"y[{t}]", ref_y[:, t], y, atol=1e-4, rtol=1e-4)
    assert_close("state", ref_state, state, atol=1e-4, rtol=1e-4)


def test_chunk_scan_bf16_inputs():
    inp = _inputs(1, 21, 4, 4, 2, 8, seed=5)
    ref_y, _ = ssd_chunk_scan(**{k: v for k, v in inp.items() if k not in ("D", "dt_bias")}, chunk_size=8,
                              D=inp["D"], dt_bias=inp["dt_bias"])
    bf = {k: v.bfloat16() for k, v in inp.items()}
    y, state = ssd_chunk_scan(bf["x"], bf["dt"], bf["A"], bf["B"], bf["C"], 8, bf["D"], bf["dt_bias"])
    assert y.dtype == torch.bfloat16 and state.dtype == torch.float32
    assert_close("y_bf16", ref_y, y, atol=0.1, rtol=0.05)


def test_chunk_scan_backward():
    inp = _inputs(1, 10, 2, 2, 1, 3, seed=9)
    x = inp["x"].double().requires_grad_()
    y, _ = ssd_chunk_scan(x, *(inp[k].double() for k in ("dt", "A", "B", "C")), 4, inp["D"].double(),
                          inp["dt_bias"].double())
    y.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_chunk_scan_rejects_bad_groups():
    inp = _inputs(1, 4, 3, 2, 2, 3)
    with pytest.raises(ValueError, match="groups"):
        ssd_chunk_scan(inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 4)


@pytest.mark.parametrize("t_len,chunk,g", CASES, ids=[f"T{t}-chunk{c}-g{g}" for t, c, g in CASES])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_chunk_scan_batched_ref(t_len, chunk, g, with_state):
    # training's reference (all full chunks in one pass) == the recurrence, and its gradients == the loop's
    bsz, h, p, n = 2, 4, 3, 5
    inp = _inputs(bsz, t_len, h, p, g, n, seed=t_len)
    init = torch.randn(bsz, h, p, n)
    ref_y, ref_state = _recurrence(**inp, state=init if with_state else torch.zeros(bsz, h, p, n))
    leaves = {k: v.clone().requires_grad_() for k, v in inp.items()}
    if with_state:
        leaves["initial_state"] = init.clone().requires_grad_()
    outs = []
    for fn in (ssd_chunk_scan_ref, ssd_chunk_scan_batched_ref):
        y, state = fn(leaves["x"], leaves["dt"], leaves["A"], leaves["B"], leaves["C"], chunk, leaves["D"],
                      leaves["dt_bias"], leaves.get("initial_state"))
        loss = (y * torch.cos(torch.arange(y.numel()).view(y.shape).float())).sum() + (state * state.sin()).sum()
        outs.append((y, state, torch.autograd.grad(loss, list(leaves.values()))))
    (_, _, ref_grads), (y, state, grads) = outs
    assert_close("y", ref_y, y, atol=1e-4, rtol=1e-4)
    assert_close("final_state", ref_state, state, atol=1e-4, rtol=1e-4)
    for name, a, b in zip(leaves, ref_grads, grads):
        assert_close(f"d{name}", a, b, atol=1e-4, rtol=1e-4)
