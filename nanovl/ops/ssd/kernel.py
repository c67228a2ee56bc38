"""Triton Mamba2 SSD: the one-token state update, and the prompt scan through flash-linear-attention.

`ssd_state_update_triton` is our kernel: one program per (row, head, block of head channels),
dt softplus/clamp, decay, state update and readout fused in one pass over the fp32 state.
`ssd_chunk_scan_triton` hands the chunked scan to fla's simple-GLA kernels (see fla_adapter.py).
"""
from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

from nanovl.ops.pdl import launch_options, pdl_mode
from nanovl.ops.pdl_jit import pdl_enter


@triton.jit
def _ssd_state_update_kernel(state, x, dt, A, B, C, D, dt_bias, y,
                             H, P, N, REP,
                             s_b, s_h, s_p, x_b, x_h, dt_b, dt_h, B_b, B_g, C_b, C_g, y_b, y_h,
                             dt_min, dt_max,
                             HAS_D: tl.constexpr, HAS_DT_BIAS: tl.constexpr, CLAMP: tl.constexpr,
                             USE_PDL: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_N: tl.constexpr):
    pdl_enter(USE_PDL)
    pid_bh, pid_p = tl.program_id(0), tl.program_id(1)
    b, h = pid_bh // H, pid_bh % H
    g = h // REP
    offs_p = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)
    offs_n = tl.arange(0, BLOCK_N)
    mask_p, mask_n = offs_p < P, offs_n < N
    # 1. dt = clamp(softplus(dt + dt_bias)); decay = exp(dt * A)
    d = tl.load(dt + b * dt_b + h * dt_h).to(tl.float32)
    if HAS_DT_BIAS:
        d += tl.load(dt_bias + h).to(tl.float32)
    d = tl.where(d > 20.0, d, tl.log(1.0 + tl.exp(d)))
    if CLAMP:
        d = tl.minimum(tl.maximum(d, dt_min), dt_max)
    decay = tl.exp(d * tl.load(A + h).to(tl.float32))
    # 2. state = decay * state + dt * x (outer) B
    xv = tl.load(x + b * x_b + h * x_h + offs_p, mask=mask_p, other=0.0).to(tl.float32)
    bv = tl.load(B + b * B_b + g * B_g + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    cv = tl.load(C + b * C_b + g * C_g + offs_n, mask=mask_n, other=0.0).to(tl.float32)
    sp = state + b * s_b + h * s_h + offs_p[:, None] * s_p + offs_n[None, :]
    m2 = mask_p[:, None] & mask_n[None, :]
    s = tl.load(sp, mask=m2, other=0.0)
    s = s * decay + (d * xv)[:, None] * bv[None, :]
    tl.store(sp, s, mask=m2)
    # 3. y = state . C + D * x
    out = tl.sum(s * cv[None, :], axis=1)
    if HAS_D:
        out += tl.load(D + h).to(tl.float32) * xv
    tl.store(y + b * y_b + h * y_h + offs_p, out.to(y.dtype.element_ty), mask=mask_p)


def ssd_state_update_triton(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
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
    n_groups, n = B.shape[-2], B.shape[-1]
    if n_heads % n_groups:
        raise ValueError(f"ssd: {n_heads} heads of x are not divisible by {n_groups} groups of B/C")
    if state.dtype != torch.float32 or state.stride(-1) != 1:
        raise ValueError("ssd_state_update: state must be float32 with a contiguous last dim")
    if x.stride(-1) != 1:
        x = x.contiguous()
    if B.stride(-1) != 1:
        B = B.contiguous()
    if C.stride(-1) != 1:
        C = C.contiguous()
    y = torch.empty(bsz, n_heads, p, dtype=x.dtype, device=x.device)
    block_p = min(16, triton.next_power_of_2(p))
    clamp = dt_limit[0] > 0.0 or dt_limit[1] != math.inf
    grid = (bsz * n_heads, triton.cdiv(p, block_p))
    pdl = pdl_mode(x)
    _ssd_state_update_kernel[grid](
        state, x, dt, A, B, C, D if D is not None else A, dt_bias if dt_bias is not None else A, y,
        n_heads, p, n, n_heads // n_groups,
        state.stride(0), state.stride(1), state.stride(2), x.stride(0), x.stride(1), dt.stride(0), dt.stride(1),
        B.stride(0), B.stride(1), C.stride(0), C.stride(1), y.stride(0), y.stride(1),
        float(dt_limit[0]), float(min(dt_limit[1], 3.0e38)),
        HAS_D=D is not None, HAS_DT_BIAS=dt_bias is not None, CLAMP=clamp, USE_PDL=pdl,
        BLOCK_P=block_p, BLOCK_N=triton.next_power_of_2(n), num_warps=4, **launch_options(pdl))
    return y


def chunk_scan_available() -> bool:
    """True when flash-linear-attention (the prompt-scan kernels) imports."""
    from nanovl.ops.ssd import fla_adapter

    return fla_adapter.available()


@triton.jit
def _ssd_scan_prep_kernel(x, dt, A, dt_bias, v, g, H, P, x_r, x_h, dt_r, dt_h,
                          dt_min, dt_max, HAS_DT_BIAS: tl.constexpr, CLAMP: tl.constexpr,
                          BLOCK_H: tl.constexpr, BLOCK_P: tl.constexpr):
    # one (b, t) row and BLOCK_H heads: dt = clamp(softplus(dt + bias)), g = dt * A, v = dt * x
    row, pid_h = tl.program_id(0), tl.program_id(1)
    offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_p = tl.arange(0, BLOCK_P)
    mask_h = offs_h < H
    d = tl.load(dt + row * dt_r + offs_h * dt_h, mask=mask_h, other=0.0).to(tl.float32)
    if HAS_DT_BIAS:
        d += tl.load(dt_bias + offs_h, mask=mask_h, other=0.0).to(tl.float32)
    d = tl.where(d > 20.0, d, tl.log(1.0 + tl.exp(d)))
    if CLAMP:
        d = tl.minimum(tl.maximum(d, dt_min), dt_max)
    tl.store(g + row * H + offs_h, d * tl.load(A + offs_h, mask=mask_h, other=0.0).to(tl.float32), mask=mask_h)
    m2 = mask_h[:, None] & (offs_p < P)[None, :]
    xv = tl.load(x + row * x_r + offs_h[:, None] * x_h + offs_p[None, :], mask=m2, other=0.0).to(tl.float32)
    tl.store(v + row * H * P + offs_h[:, None] * P + offs_p[None, :],
             (xv * d[:, None]).to(v.dtype.element_ty), mask=m2)


@triton.jit
def _ssd_scan_skip_kernel(y, x, D, H, P, x_r, x_h,
                          BLOCK_H: tl.constexpr, BLOCK_P: tl.constexpr):
    # y += D * x in place (y contiguous [rows, H, P])
    row, pid_h = tl.program_id(0), tl.program_id(1)
    offs_h = pid_h * BLOCK_H + tl.arange(0, BLOCK_H)
    offs_p = tl.arange(0, BLOCK_P)
    mask_h = offs_h < H
    m2 = mask_h[:, None] & (offs_p < P)[None, :]
    xv = tl.load(x + row * x_r + offs_h[:, None] * x_h + offs_p[None, :], mask=m2, other=0.0).to(tl.float32)
    yp = y + row * H * P + offs_h[:, None] * P + offs_p[None, :]
    out = tl.load(yp, mask=m2, other=0.0).to(tl.float32) + \
        tl.load(D + offs_h, mask=mask_h, other=0.0).to(tl.float32)[:, None] * xv
    tl.store(yp, out.to(y.dtype.element_ty), mask=m2)


def _rows_view(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """t [B, T, ...] with a contiguous last dim, viewed as rows b*T + t at one stride -> (t, row stride)."""
    b, n = t.shape[:2]
    if t.stride(-1) != 1 or (b > 1 and n > 1 and t.stride(0) != n * t.stride(1)):
        t = t.contiguous()
    return t, (t.stride(1) if n > 1 else t.stride(0))


def ssd_chunk_scan_triton(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                          chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                          initial_state: torch.Tensor | None = None,
                          dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD over a whole prompt, continuing from `initial_state` (fla simple-GLA kernels).

    Args:
        x: [B, T, H, P]; dt: [B, T, H] raw; A: [H]; B, C: [B, T, G, N]; chunk_size: ignored (fla
        picks its own chunk length, the result does not depend on it); D, dt_bias: [H] or None;
        initial_state: [B, H, P, N] or None; dt_limit: (min, max) clamp of dt after softplus.
    Returns:
        y: [B, T, H, P] in x's dtype; final_state: [B, H, P, N] fp32.
    """
    from nanovl.ops.ssd import fla_adapter

    bsz, t_len, n_heads, p = x.shape
    n_groups = B.shape[2]
    if n_heads % n_groups:
        raise ValueError(f"ssd: {n_heads} heads of x are not divisible by {n_groups} groups of B/C")
    x, x_r = _rows_view(x)
    dt, dt_r = _rows_view(dt)
    x_h = x.stride(2)
    # 1. dt, log-decay g = dt * A and v = dt * x in one pass
    v = torch.empty(bsz, t_len, n_heads, p, dtype=x.dtype, device=x.device)
    g = torch.empty(bsz, t_len, n_heads, dtype=torch.float32, device=x.device)
    block_h, block_p = 16, triton.next_power_of_2(p)
    grid = (bsz * t_len, triton.cdiv(n_heads, block_h))
    clamp = dt_limit[0] > 0.0 or dt_limit[1] != math.inf
    _ssd_scan_prep_kernel[grid](x, dt, A, dt_bias if dt_bias is not None else A, v, g, n_heads, p,
                                x_r, x_h, dt_r, dt.stride(2),
                                float(dt_limit[0]), float(min(dt_limit[1], 3.0e38)),
                                HAS_DT_BIAS=dt_bias is not None, CLAMP=clamp,
                                BLOCK_H=block_h, BLOCK_P=block_p, num_warps=4)
    # 2. the scan (groups broadcast to heads)
    rep = n_heads // n_groups
    q = C.to(x.dtype).repeat_interleave(rep, dim=2)  # [B, T, H, N]
    k = B.to(x.dtype).repeat_interleave(rep, dim=2)
    y, final = fla_adapter.simple_gla(q, k, v, g, initial_state)
    # 3. the D skip, in place
    if D is not None:
        _ssd_scan_skip_kernel[grid](y, x, D, n_heads, p, x_r, x_h, BLOCK_H=block_h, BLOCK_P=block_p, num_warps=4)
    return y, final


def ssd_chunk_scan_autograd(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                            chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                            initial_state: torch.Tensor | None = None,
                            dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """Differentiable twin of `ssd_chunk_scan_triton` (the training launcher): the dt/v/g preparation
    and the D skip in plain torch, the scan in fla's `chunk_simple_gla` (an autograd Function with a
    Triton backward). Same shapes; chunk_size is ignored. Raises before any work where fla's
    backward is known to refuse (the dispatcher then answers with the reference)."""
    from nanovl.ops.ssd import fla_adapter

    return fla_adapter.ssd_chunk_scan_fla(x, dt, A, B, C, D, dt_bias, initial_state, dt_limit)
