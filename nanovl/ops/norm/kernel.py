"""Triton RMSNorm, the residual add fused into it, and the grouped gated RMSNorm of the Mamba2
mixer (one program per row or group).

Same signatures and shapes as `ref.py`; all math in fp32, output in x's dtype.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from nanovl.ops.pdl import launch_options, pdl_mode
from nanovl.ops.pdl_jit import pdl_release, pdl_wait


@triton.jit
def _rms_norm_fwd_kernel(x, z, w, out, res, res_out, D, GROUP, sx, sz, so, sr, sro, eps,
                         HAS_GATE: tl.constexpr, HAS_RESIDUAL: tl.constexpr, USE_PDL: tl.constexpr,
                         BLOCK: tl.constexpr):
    row, grp = tl.program_id(0), tl.program_id(1)
    offs = grp * GROUP + tl.arange(0, BLOCK)
    mask = (tl.arange(0, BLOCK) < GROUP) & (offs < D)
    # the weight is no kernel's output: it loads before the wait (under PDL while the previous
    # kernel finishes) and before the residual's store, past which no load would be moved
    pdl_release(USE_PDL)
    wv = tl.load(w + offs, mask=mask, other=0.0).to(tl.float32)
    pdl_wait(USE_PDL)  # x, z and the residual are the previous kernels' outputs
    u = tl.load(x + row * sx + offs, mask=mask, other=0.0).to(tl.float32)
    if HAS_RESIDUAL:
        # the add rounds to the stream's dtype before the norm reads it, as the unfused pair does
        u = (u + tl.load(res + row * sr + offs, mask=mask, other=0.0).to(tl.float32)).to(res_out.dtype.element_ty)
        tl.store(res_out + row * sro + offs, u, mask=mask)
        u = u.to(tl.float32)
    if HAS_GATE:
        g = tl.load(z + row * sz + offs, mask=mask, other=0.0).to(tl.float32)
        u = u * (g / (1.0 + tl.exp(-g)))
    rstd = 1.0 / tl.sqrt(tl.sum(u * u, axis=0) / GROUP + eps)
    # like the reference: normalize in fp32, multiply the fp32 weight, then cast once
    y = u * rstd * wv
    tl.store(out + row * so + offs, y.to(out.dtype.element_ty), mask=mask)


def _rows(t: torch.Tensor, d: int) -> torch.Tensor:
    t2 = t.reshape(-1, d)
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def _launch(x: torch.Tensor, z: torch.Tensor | None, weight: torch.Tensor, n_groups: int, eps: float,
            residual: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
    d = x.shape[-1]
    x2 = _rows(x, d)
    z2 = _rows(z, d) if z is not None else x2
    r2 = _rows(residual, d) if residual is not None else x2
    out = torch.empty(x2.shape, dtype=x.dtype, device=x.device)
    r_out = torch.empty(x2.shape, dtype=x.dtype, device=x.device) if residual is not None else out
    group = d // n_groups
    block = triton.next_power_of_2(group)
    warps = 4 if block <= 2048 else 8
    if x2.shape[0]:
        pdl = pdl_mode(x2)
        _rms_norm_fwd_kernel[(x2.shape[0], n_groups)](
            x2, z2, weight, out, r2, r_out, d, group, x2.stride(0), z2.stride(0), out.stride(0),
            r2.stride(0), r_out.stride(0), eps,
            HAS_GATE=z is not None, HAS_RESIDUAL=residual is not None, USE_PDL=pdl, BLOCK=block,
            num_warps=warps, **launch_options(pdl))
    return out.view(x.shape), (r_out.view(x.shape) if residual is not None else None)


def rms_norm_triton(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim, computed in fp32.

    Args:
        x: [..., D] any float dtype; weight: [D]; eps: added to the mean square.
    Returns:
        [..., D] in x's dtype.
    """
    return _launch(x, None, weight, 1, eps)[0]


def add_rms_norm_triton(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                        eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """s = residual + x, rounded to x's dtype; returns (rms_norm(s), s) from one pass.

    Args:
        x, residual: [..., D] of one dtype; weight: [D]; eps: added to the mean square.
    Returns:
        (normed, s), both [..., D] in x's dtype.
    """
    if residual.shape != x.shape or residual.dtype != x.dtype:
        raise ValueError(f"add_rms_norm: residual {tuple(residual.shape)} {residual.dtype} does not match "
                         f"x {tuple(x.shape)} {x.dtype}")
    return _launch(x, None, weight, 1, eps, residual)


def gated_rms_norm_triton(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, n_groups: int,
                          eps: float) -> torch.Tensor:
    """Gate then normalize per group: u = x * silu(z); u_g /= rms(u_g); out = weight * u.

    Args:
        x: [..., D] the SSM output y; z: [..., D] the gate; weight: [D];
        n_groups: D splits into n_groups contiguous groups; eps: added to each group's mean square.
    Returns:
        [..., D] in x's dtype.
    """
    d = x.shape[-1]
    if d % n_groups:
        raise ValueError(f"gated_rms_norm: last dim {d} of x is not divisible by n_groups={n_groups}")
    if z.shape != x.shape:
        raise ValueError(f"gated_rms_norm: z shape {tuple(z.shape)} != x shape {tuple(x.shape)}")
    return _launch(x, z, weight, n_groups, eps)[0]
