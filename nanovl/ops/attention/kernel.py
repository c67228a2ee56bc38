"""GPU attention over the KV cache: flash SDPA for prefill, a Triton split-KV kernel for decode.

Same signatures and shapes as `ref.py`. The decode kernel reads only the first seq_lens[b] keys
of each row and chooses its split count from static shapes, so it is safe inside a CUDA graph.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.attention.bias import causal_lower_right

from nanovl.ops.attention.ref import check_kv_cache_write
from nanovl.ops.pdl import launch_options, pdl_mode
from nanovl.ops.pdl_jit import pdl_enter

_FAST = [SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]


_gqa_ok = True


def _sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, start: int, scale: float) -> torch.Tensor:
    """q [B, Hq, T, Dh] at positions start..start+T-1 over k, v [B, Hkv, start+T, Dh]."""
    global _gqa_ok
    t_len, rep = q.shape[2], q.shape[1] // k.shape[1]
    if start == 0 and _gqa_ok:
        try:
            with sdpa_kernel(_FAST):
                return F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=scale, enable_gqa=True)
        except RuntimeError:
            # no fused backend takes grouped kv for these inputs (e.g. fp32): expand the kv heads
            _gqa_ok = False
    k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
    # bottom-right aligned causal mask: query i sits at position start + i
    mask = causal_lower_right(t_len, start + t_len) if start else None
    with sdpa_kernel(_FAST):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=start == 0, scale=scale)


def prefill_attention_triton(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                             start_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention of T new queries per row over that row's cache (new keys already written).

    Args:
        q: [B, T, Hq, Dh] queries of positions start_pos[b] .. start_pos[b]+T-1.
        k_cache, v_cache: [B, Hkv, S, Dh]; row b holds valid keys at 0 .. start_pos[b]+T-1.
        start_pos: LongTensor [B]; scale: softmax scale.
    Returns:
        [B, T, Hq, Dh] in q's dtype.
    """
    t_len = q.shape[1]
    starts = start_pos.tolist()  # one host sync per attention layer of a prefill (never graph-captured)
    qh = q.transpose(1, 2)
    if all(s == starts[0] for s in starts):
        end = starts[0] + t_len
        o = _sdpa(qh, k_cache[:, :, :end], v_cache[:, :, :end], starts[0], scale)
    else:
        o = torch.cat([_sdpa(qh[b:b + 1], k_cache[b:b + 1, :, :s + t_len], v_cache[b:b + 1, :, :s + t_len], s, scale)
                       for b, s in enumerate(starts)])
    return o.transpose(1, 2).to(q.dtype)


@triton.jit
def _decode_attention_fwd_kernel(q, k, v, seq_lens, o_part, lse_part, scale,
                                 HKV, REP, NUM_SPLITS, CAP,
                                 q_b, q_h, k_b, k_h, k_s, v_b, v_h, v_s, op_b, op_h, op_s, l_b, l_h,
                                 DH: tl.constexpr, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr,
                                 USE_PDL: tl.constexpr):
    pdl_enter(USE_PDL)
    pid_bh, split = tl.program_id(0), tl.program_id(1)
    # int64 row offsets: 64 rows of a 32k-token cache overflow int32
    b, kvh = (pid_bh // HKV).to(tl.int64), pid_bh % HKV
    # never read past the cache, whatever seq_lens says
    seq_len = tl.minimum(tl.load(seq_lens + b).to(tl.int32), CAP)
    per_split = tl.cdiv(tl.cdiv(seq_len, NUM_SPLITS), BLOCK_N) * BLOCK_N
    lo = split * per_split
    hi = tl.minimum(lo + per_split, seq_len)
    offs_h = tl.arange(0, BLOCK_H)
    offs_d = tl.arange(0, DH)
    mask_h = offs_h < REP
    heads = kvh * REP + offs_h  # the query heads sharing this kv head
    qv = tl.load(q + b * q_b + heads[:, None] * q_h + offs_d[None, :], mask=mask_h[:, None], other=0.0)
    m_i = tl.full((BLOCK_H,), float("-inf"), dtype=tl.float32)
    l_i = tl.zeros((BLOCK_H,), dtype=tl.float32)
    acc = tl.zeros((BLOCK_H, DH), dtype=tl.float32)
    kp = k + b * k_b + kvh * k_h
    vp = v + b * v_b + kvh * v_h
    for start in range(lo, hi, BLOCK_N):
        offs_n = start + tl.arange(0, BLOCK_N)
        mask_n = offs_n < hi
        kt = tl.load(kp + offs_n[:, None] * k_s + offs_d[None, :], mask=mask_n[:, None], other=0.0)
        s = tl.dot(qv, tl.trans(kt)).to(tl.float32) * scale  # [BLOCK_H, BLOCK_N]
        s = tl.where(mask_n[None, :], s, float("-inf"))
        m_new = tl.maximum(m_i, tl.max(s, axis=1))
        alpha = tl.exp(m_i - m_new)
        p = tl.exp(s - m_new[:, None])
        l_i = l_i * alpha + tl.sum(p, axis=1)
        vt = tl.load(vp + offs_n[:, None] * v_s + offs_d[None, :], mask=mask_n[:, None], other=0.0)
        acc = acc * alpha[:, None] + tl.dot(p.to(vt.dtype), vt).to(tl.float32)
        m_i = m_new
    # an empty split leaves lse = -inf and o = 0, which the combine step weighs by zero
    lse = tl.where(l_i > 0, m_i + tl.log(l_i), float("-inf"))
    out = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    tl.store(o_part + b * op_b + heads[:, None] * op_h + split * op_s + offs_d[None, :], out, mask=mask_h[:, None])
    tl.store(lse_part + b * l_b + heads * l_h + split, lse, mask=mask_h)


@triton.jit
def _decode_attention_combine_kernel(o_part, lse_part, out, HQ, NUM_SPLITS,
                                     op_b, op_h, op_s, l_b, l_h, o_b, o_h,
                                     DH: tl.constexpr, BLOCK_S: tl.constexpr, USE_PDL: tl.constexpr):
    pdl_enter(USE_PDL)
    pid = tl.program_id(0)
    b, h = pid // HQ, pid % HQ
    offs_s = tl.arange(0, BLOCK_S)
    offs_d = tl.arange(0, DH)
    mask_s = offs_s < NUM_SPLITS
    lse = tl.load(lse_part + b * l_b + h * l_h + offs_s, mask=mask_s, other=float("-inf"))
    w = tl.exp(lse - tl.max(lse, axis=0))
    w = w / tl.sum(w, axis=0)
    parts = tl.load(o_part + b * op_b + h * op_h + offs_s[:, None] * op_s + offs_d[None, :],
                    mask=mask_s[:, None], other=0.0)
    o = tl.sum(parts * w[:, None], axis=0)
    tl.store(out + b * o_b + h * o_h + offs_d, o.to(out.dtype.element_ty))


@functools.lru_cache(maxsize=None)
def _num_sms(device: int) -> int:
    return torch.cuda.get_device_properties(device).multi_processor_count if torch.cuda.is_available() else 8


def _num_splits(bsz: int, n_kv: int, capacity: int) -> int:
    # enough programs to cover the SMs twice, but no split shorter than 256 cached keys
    sms = _num_sms(torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return max(1, min(triton.cdiv(2 * sms, bsz * n_kv), triton.cdiv(capacity, 256), 64))


def decode_attention_triton(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                            seq_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of one new query per row over the first seq_lens[b] cached keys (new key included).

    Args:
        q: [B, Hq, Dh]; k_cache, v_cache: [B, Hkv, S, Dh]; seq_lens: LongTensor [B] (>= 1).
        scale: softmax scale.
    Returns:
        [B, Hq, Dh] in q's dtype.
    """
    bsz, hq, dh = q.shape
    hkv, cap = k_cache.shape[1], k_cache.shape[2]
    if hq % hkv:
        raise ValueError(f"attention: {hq} query heads are not divisible by {hkv} kv heads")
    if dh != triton.next_power_of_2(dh) or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("decode_attention: head_dim must be a power of two with contiguous cache rows")
    q = q.to(k_cache.dtype)
    if q.stride(-1) != 1:
        q = q.contiguous()
    splits = _num_splits(bsz, hkv, cap)
    o_part = torch.empty(bsz, hq, splits, dh, dtype=torch.float32, device=q.device)
    lse_part = torch.empty(bsz, hq, splits, dtype=torch.float32, device=q.device)
    rep = hq // hkv
    pdl = pdl_mode(q)
    _decode_attention_fwd_kernel[(bsz * hkv, splits)](
        q, k_cache, v_cache, seq_lens, o_part, lse_part, scale, hkv, rep, splits, cap,
        q.stride(0), q.stride(1), k_cache.stride(0), k_cache.stride(1), k_cache.stride(2),
        v_cache.stride(0), v_cache.stride(1), v_cache.stride(2),
        o_part.stride(0), o_part.stride(1), o_part.stride(2), lse_part.stride(0), lse_part.stride(1),
        DH=dh, BLOCK_H=max(16, triton.next_power_of_2(rep)), BLOCK_N=64, USE_PDL=pdl, num_warps=4,
        **launch_options(pdl))
    out = torch.empty(bsz, hq, dh, dtype=q.dtype, device=q.device)
    _decode_attention_combine_kernel[(bsz * hq,)](
        o_part, lse_part, out, hq, splits, o_part.stride(0), o_part.stride(1), o_part.stride(2),
        lse_part.stride(0), lse_part.stride(1), out.stride(0), out.stride(1),
        DH=dh, BLOCK_S=triton.next_power_of_2(splits), USE_PDL=pdl, num_warps=4, **launch_options(pdl))
    return out


@triton.jit
def _kv_cache_write_kernel(k_new, v_new, start_pos, k_cache, v_cache, HKV, T, CAP,
                           kn_b, kn_h, kn_t, vn_b, vn_h, vn_t, kc_b, kc_h, kc_s, vc_b, vc_h, vc_s,
                           DH: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
                           USE_PDL: tl.constexpr):
    pdl_enter(USE_PDL)
    pid_bh, pid_t = tl.program_id(0), tl.program_id(1)
    b, h = (pid_bh // HKV).to(tl.int64), pid_bh % HKV
    offs_t = pid_t * BLOCK_T + tl.arange(0, BLOCK_T)
    offs_d = tl.arange(0, BLOCK_D)
    mask = (offs_t < T)[:, None] & (offs_d < DH)[None, :]
    # as the reference: a position past the capacity lands in the last slot, never out of bounds
    pos = tl.minimum(tl.load(start_pos + b).to(tl.int64) + offs_t, CAP - 1)
    kv = tl.load(k_new + b * kn_b + h * kn_h + offs_t[:, None] * kn_t + offs_d[None, :], mask=mask)
    tl.store(k_cache + b * kc_b + h * kc_h + pos[:, None] * kc_s + offs_d[None, :],
             kv.to(k_cache.dtype.element_ty), mask=mask)
    vv = tl.load(v_new + b * vn_b + h * vn_h + offs_t[:, None] * vn_t + offs_d[None, :], mask=mask)
    tl.store(v_cache + b * vc_b + h * vc_h + pos[:, None] * vc_s + offs_d[None, :],
             vv.to(v_cache.dtype.element_ty), mask=mask)


def kv_cache_write_triton(k_cache: torch.Tensor, v_cache: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                          start_pos: torch.Tensor) -> None:
    """Store k_new, v_new [B, Hkv, T, Dh] at positions start_pos[b] + t of the caches [B, Hkv, S, Dh], IN PLACE.

    Args and the clamp at the capacity: see `kv_cache_write_ref`.
    """
    check_kv_cache_write(k_cache, k_new, v_new)
    bsz, hkv, t, dh = k_new.shape
    if k_new.stride(-1) != 1:
        k_new = k_new.contiguous()
    if v_new.stride(-1) != 1:
        v_new = v_new.contiguous()
    if k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("kv_cache_write: cache rows must be contiguous")
    if not (bsz and t):
        return
    start_pos = start_pos.to(k_cache.device).contiguous()
    block_d = triton.next_power_of_2(dh)
    block_t = max(1, min(triton.next_power_of_2(t), 4096 // block_d))
    pdl = pdl_mode(k_cache)
    _kv_cache_write_kernel[(bsz * hkv, triton.cdiv(t, block_t))](
        k_new, v_new, start_pos, k_cache, v_cache, hkv, t, k_cache.shape[2],
        k_new.stride(0), k_new.stride(1), k_new.stride(2), v_new.stride(0), v_new.stride(1), v_new.stride(2),
        k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), v_cache.stride(0), v_cache.stride(1),
        v_cache.stride(2), DH=dh, BLOCK_T=block_t, BLOCK_D=block_d, USE_PDL=pdl, num_warps=4,
        **launch_options(pdl))
