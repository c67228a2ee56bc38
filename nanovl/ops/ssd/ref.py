"""Plain-PyTorch Mamba2 SSD: the chunked scan over a prompt and the one-token state update (SPEC §2.4-2.6).

Recurrence per head h (group g = h // (H/G)), all in fp32:
    state_t = exp(dt_t*A_h) * state_{t-1} + dt_t * x_t (outer) B_t[g]
    y_t     = state_t . C_t[g] + D_h * x_t
with dt = clamp(softplus(dt_raw + dt_bias), *dt_limit).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _dt(dt: torch.Tensor, dt_bias: torch.Tensor | None, dt_limit: tuple[float, float]) -> torch.Tensor:
    dt = dt.float()
    if dt_bias is not None:
        dt = dt + dt_bias.float()
    dt = F.softplus(dt)
    # the default limit (0, inf) is a no-op, like the mamba_ssm kernels (SPEC open question 10)
    if dt_limit[0] > 0.0 or dt_limit[1] != math.inf:
        dt = dt.clamp(min=dt_limit[0], max=dt_limit[1])
    return dt


def _own_copy(state: torch.Tensor) -> torch.Tensor:
    # callers overwrite the state in place afterwards; under autograd the graph must hold its own copy
    return state.float().clone() if torch.is_grad_enabled() else state.float()


def _check(x: torch.Tensor, B: torch.Tensor, n_heads: int) -> int:
    n_groups = B.shape[-2]
    if n_heads % n_groups:
        raise ValueError(f"ssd: {n_heads} heads of x are not divisible by {n_groups} groups of B/C")
    return n_groups


def _scan_setup(x, dt, B, chunk_size, dt_bias, dt_limit):
    """Checks shared by both chunk-scan references; returns (n_groups, state size N, heads per
    group, dt after bias, softplus and clamp)."""
    n_groups = _check(x, B, x.shape[2])
    if chunk_size <= 0:
        raise ValueError(f"ssd_chunk_scan: chunk_size must be positive, got {chunk_size}")
    return n_groups, B.shape[-1], x.shape[2] // n_groups, _dt(dt, dt_bias, dt_limit)


def ssd_chunk_scan_ref(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                       chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                       initial_state: torch.Tensor | None = None,
                       dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD over a whole prompt, continuing from `initial_state`.

    Args:
        x: [B, T, H, P]; dt: [B, T, H] raw (before dt_bias and softplus); A: [H] (negative);
        B, C: [B, T, G, N]; chunk_size: tokens per chunk (T need not be a multiple);
        D: [H] or None; dt_bias: [H] or None; initial_state: [B, H, P, N] or None (zeros);
        dt_limit: (min, max) clamp of dt after softplus.
    Returns:
        y: [B, T, H, P] in x's dtype; final_state: [B, H, P, N] fp32.
    """
    bsz, t_len, n_heads, p = x.shape
    n_groups, n, rep, dt = _scan_setup(x, dt, B, chunk_size, dt_bias, dt_limit)  # dt: [B, T, H]
    a = dt * A.float()  # [B, T, H] log-decay per step
    xg = x.float().view(bsz, t_len, n_groups, rep, p)
    xdt = xg * dt.view(bsz, t_len, n_groups, rep, 1)
    Bf, Cf = B.float(), C.float()
    state = (x.new_zeros(bsz, n_heads, p, n, dtype=torch.float32) if initial_state is None
             else _own_copy(initial_state)).view(bsz, n_groups, rep, p, n)
    ys = []
    for s in range(0, t_len, chunk_size):
        e = min(s + chunk_size, t_len)
        cum = a[:, s:e].cumsum(1).view(bsz, e - s, n_groups, rep)  # [B, L, G, R]
        # 1. intra-chunk outputs: y_t += sum_{s<=t} exp(cum_t - cum_s) (C_t.B_s) dt_s x_s
        seg = cum[:, :, None] - cum[:, None, :]  # [B, L(t), L(s), G, R]
        causal = torch.ones(e - s, e - s, dtype=torch.bool, device=x.device).tril()
        decay = torch.exp(seg.masked_fill(~causal[None, :, :, None, None], -math.inf))
        cb = torch.einsum("btgn,bsgn->btsg", Cf[:, s:e], Bf[:, s:e])  # [B, L, L, G]
        y = torch.einsum("btsgr,bsgrp->btgrp", decay * cb[..., None], xdt[:, s:e])
        # 2. contribution of the state entering the chunk
        y = y + torch.einsum("btgn,bgrpn->btgrp", Cf[:, s:e], state) * torch.exp(cum)[..., None]
        ys.append(y)
        # 3. state leaving the chunk
        to_end = torch.exp(cum[:, -1:] - cum)  # [B, L, G, R]
        state = state * torch.exp(cum[:, -1])[..., None, None] + torch.einsum(
            "bsgn,bsgrp->bgrpn", Bf[:, s:e], xdt[:, s:e] * to_end[..., None])
    y = torch.cat(ys, dim=1).view(bsz, t_len, n_heads, p) if ys else x.new_zeros(x.shape, dtype=torch.float32)
    if D is not None:
        y = y + x.float() * D.float()[:, None]
    return y.to(x.dtype), state.reshape(bsz, n_heads, p, n)


def _scan_chunks(a: torch.Tensor, xdt: torch.Tensor, B: torch.Tensor, C: torch.Tensor, state: torch.Tensor,
                 size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SSD over nc = T/size chunks of `size` steps, batched over chunks, the chunk-to-chunk state
    recurrence included (in closed form over the chunks, the same segment-sum trick as inside one).
    a: [B, T, G, R] log-decays; xdt: [B, T, G, R, P]; B, C: [B, T, G, N]; state: [B, G, R, P, N]
    entering. Returns y [B, T, G, R, P] (no D skip) and the leaving state."""
    bsz, t_len, g, r, p = xdt.shape
    nc = t_len // size
    a, xdt = a.reshape(bsz, nc, size, g, r), xdt.reshape(bsz, nc, size, g, r, p)
    B, C = B.reshape(bsz, nc, size, g, -1), C.reshape(bsz, nc, size, g, -1)
    cum = a.cumsum(2)  # [B, nc, L, G, R] within each chunk
    # 1. intra-chunk outputs: y_t += sum_{s<=t} exp(cum_t - cum_s) (C_t.B_s) dt_s x_s
    seg = cum[:, :, :, None] - cum[:, :, None, :]  # [B, nc, L(t), L(s), G, R]
    causal = torch.ones(size, size, dtype=torch.bool, device=a.device).tril()
    decay = torch.exp(seg.masked_fill(~causal[:, :, None, None], -math.inf))
    cb = torch.einsum("bctgn,bcsgn->bctsg", C, B)  # [B, nc, L, L, G]
    y = torch.einsum("bctsgr,bcsgrp->bctgrp", decay * cb[..., None], xdt)
    # 2. what each chunk adds to the state (from zero), and the state entering each chunk
    to_end = torch.exp(cum[:, :, -1:] - cum)  # [B, nc, L, G, R]
    added = torch.einsum("bcsgn,bcsgrp->bcgrpn", B, xdt * to_end[..., None])  # [B, nc, G, R, P, N]
    # state entering chunk c = exp(L_{c-1}) state_0 + sum_{j<c} exp(L_{c-1} - L_j) added_j, with L the
    # running sum of the chunks' log-decays (a loop over chunks here cost 3 ops a chunk, forward and back);
    # row nc of the same sums is the state leaving the last chunk
    total = cum[:, :, -1]  # [B, nc, G, R] each chunk's log-decay
    upto = torch.cat([total.new_zeros(total[:, :1].shape), total.cumsum(1)], 1)  # [B, nc+1, G, R]: L_{c-1}
    seg = upto[:, :, None] - upto[:, None, 1:]  # [B, nc+1 (c), nc (j), G, R]
    before = torch.ones(nc + 1, nc, dtype=torch.bool, device=a.device).tril(-1)  # j < c
    weights = torch.exp(seg.masked_fill(~before[:, :, None, None], -math.inf))
    states = torch.einsum("bcjgr,bjgrpn->bcgrpn", weights, added) + torch.exp(upto)[..., None, None] * state[:, None]
    # 3. contribution of the entering states
    y = y + torch.einsum("bctgn,bcgrpn->bctgrp", C, states[:, :nc]) * torch.exp(cum)[..., None]
    return y.reshape(bsz, t_len, g, r, p), states[:, nc]


def ssd_chunk_scan_batched_ref(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                               C: torch.Tensor, chunk_size: int, D: torch.Tensor | None = None,
                               dt_bias: torch.Tensor | None = None, initial_state: torch.Tensor | None = None,
                               dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """`ssd_chunk_scan_ref` with all full chunks batched into one pass (the training reference:
    ~3x fewer ops forward and backward). Same shapes and math; the rounding differs at fp32 noise
    level, so inference keeps the per-chunk loop and its bit-for-bit history."""
    bsz, t_len, n_heads, p = x.shape
    n_groups, n, rep, dt = _scan_setup(x, dt, B, chunk_size, dt_bias, dt_limit)  # dt: [B, T, H]
    a = (dt * A.float()).view(bsz, t_len, n_groups, rep)  # log-decay per step
    xdt = (x.float() * dt[..., None]).view(bsz, t_len, n_groups, rep, p)
    Bf, Cf = B.float(), C.float()
    state = (x.new_zeros(bsz, n_heads, p, n, dtype=torch.float32) if initial_state is None
             else _own_copy(initial_state)).view(bsz, n_groups, rep, p, n)
    # all full chunks in one batched pass, then the shorter last chunk (if any) in a second one
    full = t_len - t_len % chunk_size
    ys = []
    for s, e, size in ((0, full, chunk_size), (full, t_len, t_len - full)):
        if e > s:
            y, state = _scan_chunks(a[:, s:e], xdt[:, s:e], Bf[:, s:e], Cf[:, s:e], state, size)
            ys.append(y)
    y = torch.cat(ys, dim=1).view(bsz, t_len, n_heads, p) if ys else x.new_zeros(x.shape, dtype=torch.float32)
    if D is not None:
        y = y + x.float() * D.float()[:, None]
    return y.to(x.dtype), state.reshape(bsz, n_heads, p, n)


def ssd_state_update_ref(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
                         B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None,
                         dt_bias: torch.Tensor | None = None,
                         dt_limit: tuple[float, float] = (0.0, math.inf)) -> torch.Tensor:
    """One recurrent step of the SSD for a single new token.

    Args:
        state: [B, H, P, N] fp32, updated IN PLACE.
        x: [B, H, P]; dt: [B, H] raw; A: [H]; B, C: [B, G, N]; D: [H] or None; dt_bias: [H] or None.
    Returns:
        y: [B, H, P] in x's dtype.
    """
    bsz, n_heads, p = x.shape
    n_groups = _check(x, B, n_heads)
    rep = n_heads // n_groups
    dt = _dt(dt, dt_bias, dt_limit)  # [B, H]
    decay = torch.exp(dt * A.float())  # [B, H]
    Bh = B.float().repeat_interleave(rep, dim=1)  # [B, H, N]
    Ch = C.float().repeat_interleave(rep, dim=1)
    new = _own_copy(state) * decay[..., None, None] + (dt[..., None] * x.float())[..., None] * Bh[:, :, None, :]
    state.copy_(new)
    y = torch.einsum("bhpn,bhn->bhp", new, Ch)
    if D is not None:
        y = y + x.float() * D.float()[:, None]
    return y.to(x.dtype)
