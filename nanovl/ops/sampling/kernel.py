"""Triton twins of the sampling filters and the draw, for the work between two decode steps.

The references sort the whole vocabulary for top-p and call a generator once per seeded row; on a
GPU at batch 64 that was some 1.4 ms of kernels and 2 ms of launches a step. Here:

- `apply_temperature_top_k_top_p_min_p_triton`: one program per row. Top-p keeps the tokens whose
  logit is at least a threshold T, the least logit whose strictly-greater mass is below top_p
  (`ref.py` keeps the same set: ties with the last kept token stay). T is bracketed by bisection on
  the logit: each pass re-reads the row (from L2) and sums exp(x - max) above the midpoint, until
  at most 2048 tokens lie strictly inside the bracket (a handful of passes). One more pass gathers
  them; sorted in registers, their cumulative mass places T exactly. Top-k runs first, the same
  search counting tokens instead of summing mass (`_select_threshold`): its threshold is the k-th
  largest value, and top-p then sums only the tokens at or above it.
- `sample_triton`: logits + Gumbel noise from the same counter-based hash as `uniform_noise_ref`,
  each program the argmax of one chunk of a row; torch picks the best chunk.

The filter autotunes on its first call per (vocabulary, batch bucket), which synchronises once;
later calls only launch.

Float sums here run in a different order than the reference's cumsum, so a token whose mass lands
within rounding of top_p may fall on the other side; the GPU tests allow exactly that.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 4096
# the bisection over the whole row stops once at most this many tokens lie inside its bracket; they
# are then gathered and sorted in registers, which places the threshold exactly in one step
_CANDIDATES = 2048
# the bracket halves per pass while more than _CANDIDATES tokens lie strictly inside it, so a float
# lies between its ends and the midpoint is new: fp32 brackets split some 64 times at most
_MAX_BISECTIONS = 96


def _bench(fn, quantiles=None):
    # shorter than the autotuner's default (25 ms warm-up, 100 ms timing per config)
    return triton.testing.do_bench(fn, warmup=5, rep=20, quantiles=quantiles)


# (BLOCK, num_warps): one program streams a whole row per pass, so more warps keep more of it in
# flight; the row count (1 program a row) decides how much of the GPU the other rows fill
_FILTER_CONFIGS = [triton.Config({"BLOCK": b}, num_warps=w) for b, w in
                   ((4096, 8), (4096, 16), (8192, 16), (8192, 32), (2048, 8))]


# keyed on the vocabulary and the batch's power-of-two bucket; the first call of a key times every
# config on the real rows (the kernel writes only `out` and `cand`, so reruns are harmless)
@triton.autotune(configs=_FILTER_CONFIGS, key=["V", "ROWS_BUCKET"], do_bench=_bench)
@triton.jit
def _filter_kernel(x_ptr, out_ptr, cand_ptr, temp_ptr, top_k_ptr, top_p_ptr, min_p_ptr, V, sx, so, ROWS_BUCKET,
                   HAS_TOP_K: tl.constexpr, HAS_TOP_P: tl.constexpr, HAS_MIN_P: tl.constexpr,
                   MAX_BISECTIONS: tl.constexpr, BLOCK: tl.constexpr, CANDIDATES: tl.constexpr):
    row = tl.program_id(0)
    x_row = x_ptr + row.to(tl.int64) * sx
    out_row = out_ptr + row.to(tl.int64) * so
    cand_row = cand_ptr + row.to(tl.int64) * CANDIDATES
    t = tl.load(temp_ptr + row)
    greedy = t <= 0.0
    inv_t = 1.0 / tl.where(greedy, 1.0, t)
    NEG = float("-inf")
    cols = tl.arange(0, BLOCK)
    # pass 1: the row's max (its first position, for a greedy row) and least finite value; every
    # pass recomputes v = x * (1 / t) from x (in L2) rather than keeping a copy (the reference
    # divides: kept values agree to a rounding, and ties stay ties)
    lo_blk = tl.full((BLOCK,), float("inf"), tl.float32)
    m = tl.full((), NEG, tl.float32)
    m_at = tl.full((), 0, tl.int32)
    for start in range(0, V, BLOCK):
        offs = start + cols
        v = tl.load(x_row + offs, mask=offs < V, other=NEG) * inv_t
        bm = tl.max(v, axis=0)
        take = bm > m  # strict: an equal max later in the row keeps the first
        m_at = tl.where(take, start + tl.argmax(v, axis=0, tie_break_left=True), m_at)
        m = tl.maximum(m, bm)
        lo_blk = tl.minimum(lo_blk, tl.where(v == NEG, float("inf"), v))
    lo = tl.min(lo_blk, axis=0)
    lo = lo - tl.maximum(1.0, tl.abs(lo))  # strictly below every token, even where 1 would round away
    # top-k: kth = the k-th largest v (ties with it stay); tokens below it are dropped from here on
    kth = tl.full((), NEG, tl.float32)
    if HAS_TOP_K:
        k = tl.load(top_k_ptr + row)
        if (k > 0) & (~greedy):
            inside_blk = tl.zeros((BLOCK,), tl.int32)
            at_max_blk = tl.zeros((BLOCK,), tl.int32)
            for start in range(0, V, BLOCK):
                offs = start + cols
                v = tl.load(x_row + offs, mask=offs < V, other=NEG) * inv_t
                inside_blk += ((v != NEG) & (v < m)).to(tl.int32)
                at_max_blk += (v == m).to(tl.int32)
            inside = tl.sum(inside_blk, axis=0)
            if k < inside + tl.sum(at_max_blk, axis=0):  # else every finite token is in the top k
                kth = _select_threshold(x_row, cand_row, V, inv_t, kth, m, lo, inside, k.to(tl.float32),
                                        False, MAX_BISECTIONS, BLOCK, CANDIDATES)
    threshold = kth
    if HAS_TOP_P:
        p = tl.load(top_p_ptr + row)
        if (p < 1.0) & (~greedy):
            # pass 2: the mass (relative to the max) of the tokens top-k kept, and those strictly inside (lo, m)
            z_blk = tl.zeros((BLOCK,), tl.float32)
            in_blk = tl.zeros((BLOCK,), tl.int32)
            for start in range(0, V, BLOCK):
                offs = start + cols
                v = _scaled(x_row, offs, V, inv_t, kth)
                z_blk += tl.exp(v - m)
                in_blk += ((v != NEG) & (v < m)).to(tl.int32)
            threshold = _select_threshold(x_row, cand_row, V, inv_t, kth, m, lo, tl.sum(in_blk, axis=0),
                                          p * tl.sum(z_blk, axis=0), True, MAX_BISECTIONS, BLOCK, CANDIDATES)
            threshold = tl.maximum(threshold, kth)
    floor = tl.full((), 0.0, tl.float32)
    if HAS_MIN_P:
        floor = tl.load(min_p_ptr + row)
    # the write: a greedy row is one-hot on its argmax; others keep v >= T and exp(v - m) >= min_p
    for start in range(0, V, BLOCK):
        offs = start + cols
        v = tl.load(x_row + offs, mask=offs < V, other=NEG) * inv_t
        keep = (v >= threshold) & (tl.exp(v - m) >= floor)
        y = tl.where(keep, v, NEG)
        y = tl.where(greedy, tl.where(offs == m_at, 0.0, NEG), y)
        tl.store(out_row + offs, y, mask=offs < V)


@triton.jit
def _scaled(x_row, offs, V, inv_t, kth):
    """The row's v = x / t at offs, -inf past V and below top-k's threshold kth."""
    v = tl.load(x_row + offs, mask=offs < V, other=float("-inf")) * inv_t
    return tl.where(v >= kth, v, float("-inf"))


@triton.jit
def _select_threshold(x_row, cand_row, V, inv_t, kth, m, lo, inside, target, BY_MASS: tl.constexpr,
                      MAX_BISECTIONS: tl.constexpr, BLOCK: tl.constexpr, CANDIDATES: tl.constexpr):
    """The least v whose measure strictly above it stays under `target`: top-p's threshold where
    the measure of a token is its mass exp(v - m) (BY_MASS), top-k's (the k-th largest v, target k)
    where it is 1. Tokens below kth do not count. `inside`: the tokens strictly inside (lo, m).

    The bracket (lo, hi] holds the threshold (measure above lo >= target > measure above hi) and
    halves until at most CANDIDATES tokens lie strictly inside it; those are gathered into
    cand_row and sorted in registers, and their running measure places the threshold exactly."""
    NEG = float("-inf")
    cols = tl.arange(0, BLOCK)
    hi = m
    above_hi = tl.zeros((), tl.float32)  # the measure strictly above hi
    for _ in range(MAX_BISECTIONS):
        if inside > CANDIDATES:
            mid = lo + (hi - lo) * 0.5
            above_blk = tl.zeros((BLOCK,), tl.float32)
            left_blk = tl.zeros((BLOCK,), tl.int32)
            right_blk = tl.zeros((BLOCK,), tl.int32)
            for start in range(0, V, BLOCK):
                offs = start + cols
                v = _scaled(x_row, offs, V, inv_t, kth)
                above_blk += tl.where(v > mid, _measure(v, m, BY_MASS), 0.0)
                left_blk += ((v > lo) & (v < mid)).to(tl.int32)
                right_blk += ((v > mid) & (v < hi)).to(tl.int32)
            above = tl.sum(above_blk, axis=0)
            if above < target:
                hi = mid
                above_hi = above
                inside = tl.sum(left_blk, axis=0)
            else:
                lo = mid
                inside = tl.sum(right_blk, axis=0)
    # gather the tokens strictly inside (lo, hi), and the measure of those equal to hi
    at_hi_blk = tl.zeros((BLOCK,), tl.float32)
    filled = tl.zeros((), tl.int32)
    for start in range(0, V, BLOCK):
        offs = start + cols
        v = _scaled(x_row, offs, V, inv_t, kth)
        at_hi_blk += tl.where(v == hi, _measure(v, m, BY_MASS), 0.0)
        take = (v > lo) & (v < hi)
        slot = filled + tl.cumsum(take.to(tl.int32), axis=0) - 1
        tl.store(cand_row + slot, v, mask=take & (slot < CANDIDATES))
        filled += tl.sum(take.to(tl.int32), axis=0)
    # the candidates, largest first: the threshold is the least one whose measure strictly above
    # (the tokens at or above hi, then the candidates before it) stays under target; a later twin
    # of a tied value counts its twins as above, so the count can only stop early within a tie,
    # on the same value
    k = tl.arange(0, CANDIDATES)
    c = tl.load(cand_row + k, mask=k < tl.minimum(filled, CANDIDATES), other=NEG)
    c = tl.sort(c, dim=0, descending=True)
    w = tl.where(c != NEG, _measure(c, m, BY_MASS), 0.0)
    before = above_hi + tl.sum(at_hi_blk, axis=0) + tl.cumsum(w, axis=0) - w
    good = (before < target) & (c != NEG)
    n_good = tl.sum(good.to(tl.int32), axis=0)
    last = tl.min(tl.where(good, c, float("inf")), axis=0)
    return tl.where(n_good > 0, last, hi)


@triton.jit
def _measure(v, m, BY_MASS: tl.constexpr):
    if BY_MASS:
        return tl.exp(v - m)
    return tl.full(v.shape, 1.0, tl.float32)


def apply_temperature_top_k_top_p_min_p_triton(logits: torch.Tensor, temperature: torch.Tensor,
                                               top_k: torch.Tensor | None, top_p: torch.Tensor | None,
                                               min_p: torch.Tensor | None) -> torch.Tensor:
    """Same contract as `apply_temperature_top_k_top_p_min_p_ref`."""
    x = logits.float().contiguous()
    B, V = x.shape
    out = torch.empty_like(x)
    if B == 0:
        return out
    dev = x.device
    temp = torch.as_tensor(temperature, dtype=torch.float32, device=dev).reshape(B).contiguous()
    p = temp if top_p is None else torch.as_tensor(top_p, dtype=torch.float32, device=dev).reshape(B).contiguous()
    mp = temp if min_p is None else torch.as_tensor(min_p, dtype=torch.float32, device=dev).reshape(B).contiguous()
    # k past V keeps every token, as does k <= 0; clamped first so an int64 k cannot wrap in int32
    k = temp if top_k is None else torch.as_tensor(top_k, device=dev).reshape(B).clamp(max=V).to(torch.int32)
    selects = top_p is not None or top_k is not None
    cand = torch.empty(B if selects else 1, _CANDIDATES, dtype=torch.float32, device=dev)
    _filter_kernel[(B,)](x, out, cand, temp, k.contiguous(), p, mp, V, x.stride(0), out.stride(0),
                         triton.next_power_of_2(B),
                         HAS_TOP_K=top_k is not None, HAS_TOP_P=top_p is not None, HAS_MIN_P=min_p is not None,
                         MAX_BISECTIONS=_MAX_BISECTIONS, CANDIDATES=_CANDIDATES)
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
