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
    n_groups = _check(x, B, n_heads)
    n = B.shape[-1]
    rep = n_heads // n_groups
    if chunk_size <= 0:
        raise ValueError(f"ssd_chunk_scan: chunk_size must be positive, got {chunk_size}")
    dt = _dt(dt, dt_bias, dt_limit)  # [B, T, H]
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
