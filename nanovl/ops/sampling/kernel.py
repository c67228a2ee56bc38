"""Triton twins of the sampling filters and the draw, for the work between two decode steps.

The references sort the whole vocabulary for top-p and call a generator once per seeded row; on a
GPU at batch 64 that was some 1.4 ms of kernels and 2 ms of launches a step. Here:

- `apply_temperature_top_k_top_p_min_p_triton`: one program per row. Top-p keeps the tokens whose
  logit is at least a threshold T, the least logit whose strictly-greater mass is below top_p
  (`ref.py` keeps the same set: ties with the last kept token stay). T is found by bisection on the
  logit: each pass re-reads the row (from L2) and sums exp(x - max) above the midpoint, and the
  search stops once no token lies strictly inside the bracket, where T is its upper end. Rows with a
  top-k use the reference for the whole call (a k-th value search is a different bisection).
- `sample_triton`: logits + Gumbel noise from the same counter-based hash as `uniform_noise_ref`,
  each program the argmax of one chunk of a row; torch picks the best chunk.

Float sums here run in a different order than the reference's cumsum, so a token whose mass lands
within rounding of top_p may fall on the other side; the GPU tests allow exactly that.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from nanovl.ops.sampling.ref import apply_temperature_top_k_top_p_min_p_ref

_BLOCK = 4096
# the bracket starts below the least token and ends at the max, and halves per pass while a token lies
# strictly inside it; the counts are exact, so then a float lies between its ends and the midpoint
# is new. Halving fp32 brackets takes at most some 64 passes (the exponent, then the mantissa bits)
_MAX_BISECTIONS = 96


@triton.jit
def _filter_kernel(x_ptr, out_ptr, temp_ptr, top_p_ptr, min_p_ptr, V, sx, so,
                   HAS_TOP_P: tl.constexpr, HAS_MIN_P: tl.constexpr, MAX_BISECTIONS: tl.constexpr,
                   BLOCK: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row.to(tl.int64) * sx
    out_row = out_ptr + row.to(tl.int64) * so
    t = tl.load(temp_ptr + row)
    greedy = t <= 0.0
    t = tl.where(greedy, 1.0, t)
    NEG = float("-inf")
    cols = tl.arange(0, BLOCK)
    # pass 1: the row's max (its first position, for a greedy row) and least finite value
    m = tl.full((), NEG, tl.float32)
    m_at = tl.full((), 0, tl.int32)
    lo = tl.full((), float("inf"), tl.float32)
    for start in range(0, V, BLOCK):
        offs = start + cols
        v = tl.load(x_row + offs, mask=offs < V, other=NEG) / t
        bm = tl.max(v, axis=0)
        b_at = tl.argmax(v, axis=0, tie_break_left=True)
        take = bm > m  # strict: an equal max later in the row keeps the first
        m_at = tl.where(take, start + b_at, m_at)
        m = tl.maximum(m, bm)
        lo = tl.minimum(lo, tl.min(tl.where(v == NEG, float("inf"), v), axis=0))
    threshold = tl.full((), NEG, tl.float32)
    if HAS_TOP_P:
        p = tl.load(top_p_ptr + row)
        if (p < 1.0) & (~greedy):
            # pass 2: the mass (relative to the max) and the tokens strictly inside [lo - 1, m]
            z = tl.zeros((), tl.float32)
            inside = tl.zeros((), tl.int32)
            for start in range(0, V, BLOCK):
                offs = start + cols
                v = tl.load(x_row + offs, mask=offs < V, other=NEG) / t
                z += tl.sum(tl.exp(v - m), axis=0)
                inside += tl.sum(((v != NEG) & (v < m)).to(tl.int32), axis=0)
            target = p * z
            lo = lo - tl.maximum(1.0, tl.abs(lo))  # strictly below every token, even where 1 would round away
            hi = m
            # invariant: mass above lo >= target > mass above hi, so T lies in (lo, hi]
            for _ in range(MAX_BISECTIONS):
                if inside > 0:
                    mid = lo + (hi - lo) * 0.5
                    above = tl.zeros((), tl.float32)
                    left = tl.zeros((), tl.int32)
                    right = tl.zeros((), tl.int32)
                    for start in range(0, V, BLOCK):
                        offs = start + cols
                        v = tl.load(x_row + offs, mask=offs < V, other=NEG) / t
                        above += tl.sum(tl.where(v > mid, tl.exp(v - m), 0.0), axis=0)
                        left += tl.sum(((v > lo) & (v < mid)).to(tl.int32), axis=0)
                        right += tl.sum(((v > mid) & (v < hi)).to(tl.int32), axis=0)
                    if above < target:
                        hi = mid
                        inside = left
                    else:
                        lo = mid
                        inside = right
            threshold = hi
    floor = tl.full((), 0.0, tl.float32)
    if HAS_MIN_P:
        floor = tl.load(min_p_ptr + row)
    # the write: a greedy row is one-hot on its argmax; others keep x >= T and exp(x - m) >= min_p
    for start in range(0, V, BLOCK):
        offs = start + cols
        v = tl.load(x_row + offs, mask=offs < V, other=NEG) / t
        keep = (v >= threshold) & (tl.exp(v - m) >= floor)
        y = tl.where(keep, v, NEG)
        y = tl.where(greedy, tl.where(offs == m_at, 0.0, NEG), y)
        tl.store(out_row + offs, y, mask=offs < V)


def apply_temperature_top_k_top_p_min_p_triton(logits: torch.Tensor, temperature: torch.Tensor,
                                               top_k: torch.Tensor | None, top_p: torch.Tensor | None,
                                               min_p: torch.Tensor | None) -> torch.Tensor:
    """Same contract as `apply_temperature_top_k_top_p_min_p_ref`."""
    if top_k is not None:
        return apply_temperature_top_k_top_p_min_p_ref(logits, temperature, top_k, top_p, min_p)
    x = logits.float().contiguous()
    B, V = x.shape
    out = torch.empty_like(x)
    if B == 0:
        return out
    temp = torch.as_tensor(temperature, dtype=torch.float32, device=x.device).reshape(B).contiguous()
    p = temp if top_p is None else torch.as_tensor(top_p, dtype=torch.float32, device=x.device).reshape(B).contiguous()
    mp = temp if min_p is None else torch.as_tensor(min_p, dtype=torch.float32, device=x.device).reshape(B).contiguous()
    _filter_kernel[(B,)](x, out, temp, p, mp, V, x.stride(0), out.stride(0), HAS_TOP_P=top_p is not None,
                         HAS_MIN_P=min_p is not None, MAX_BISECTIONS=_MAX_BISECTIONS, BLOCK=_BLOCK, num_warps=8)
    return out


@triton.jit
def _mix32(x):
    # the bijection of ref._mix32 on uint32 words (wrapping multiplies, logical shifts)
    x = x ^ (x >> 16)
    x = x * 0x7FEB352D
    x = x ^ (x >> 15)
    x = x * 0x846CA68B
    return x ^ (x >> 16)


@triton.jit
def _gumbel_argmax_kernel(x_ptr, seeds_ptr, best_ptr, at_ptr, V, sx, NUM_CHUNKS, BLOCK: tl.constexpr):
    row, chunk = tl.program_id(0), tl.program_id(1)
    offs = chunk * BLOCK + tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row.to(tl.int64) * sx + offs, mask=offs < V, other=float("-inf"))
    seed = tl.load(seeds_ptr + row)
    key = _mix32((seed >> 32).to(tl.uint32) ^ _mix32((seed & 0xFFFFFFFF).to(tl.uint32)))
    bits = _mix32(_mix32(offs.to(tl.uint32) + key) ^ key)
    u = ((bits >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    score = x - tl.log(-tl.log(u))
    best = tl.max(score, axis=0)
    at = tl.argmax(score, axis=0, tie_break_left=True)
    tl.store(best_ptr + row * NUM_CHUNKS + chunk, best)
    tl.store(at_ptr + row * NUM_CHUNKS + chunk, chunk * BLOCK + at)


def sample_triton(logits: torch.Tensor, seeds: torch.Tensor, greedy: torch.Tensor | None = None) -> torch.Tensor:
    """Same contract as `sample_ref`."""
    x = logits.float().contiguous()
    B, V = x.shape
    if seeds.shape != (B,):
        raise ValueError(f"need one seed per row: seeds of shape {tuple(seeds.shape)} for {B} rows")
    if B == 0:
        return torch.empty(0, dtype=torch.long, device=x.device)
    chunks = triton.cdiv(V, _BLOCK)
    best = torch.empty(B, chunks, dtype=torch.float32, device=x.device)
    at = torch.empty(B, chunks, dtype=torch.int32, device=x.device)
    _gumbel_argmax_kernel[(B, chunks)](x, seeds.to(device=x.device, dtype=torch.long).contiguous(), best, at, V,
                                       x.stride(0), chunks, BLOCK=_BLOCK, num_warps=8)
    # the first chunk holding the row's best score, as the reference's argmax takes the first
    ids = at.gather(1, best.argmax(dim=1, keepdim=True)).squeeze(1).long()
    if greedy is not None:
        ids = torch.where(greedy.to(ids.device), logits.argmax(dim=1), ids)
    return ids
