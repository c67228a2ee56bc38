"""The Mamba2 SSD prompt scan expressed as flash-linear-attention's simple-GLA chunk kernel.

SSD with a scalar decay per head is simple GLA with
    q = C, k = B (groups broadcast to heads), v = dt * x, g = dt * A (log-decay), scale = 1,
and the state kept [V, K] = [P, N] per head (`state_v_first`), which is our [B, H, P, N] layout.
The D skip is added here, outside the kernel. Needs the `fla` package (flash-linear-attention >= 0.6).
"""
from __future__ import annotations

import importlib.util
import math

import torch

from nanovl.ops.ssd.ref import _dt

_ok: bool | None = None


def available() -> bool:
    """True when fla's simple-GLA chunk kernel can be imported."""
    global _ok
    if _ok is None:
        _ok = importlib.util.find_spec("fla") is not None
        if _ok:
            try:
                from fla.ops.simple_gla import chunk_simple_gla  # noqa: F401
            except ImportError:
                _ok = False
    return _ok


def ssd_chunk_scan_fla(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                       D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                       initial_state: torch.Tensor | None = None,
                       dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD via fla. Shapes as `ssd_chunk_scan_ref` (chunk length is fla's own).

    Args:
        x: [B, T, H, P]; dt: [B, T, H] raw; A: [H]; B, C: [B, T, G, N]; D, dt_bias: [H] or None;
        initial_state: [B, H, P, N] or None; dt_limit: clamp of dt after softplus.
    Returns:
        y: [B, T, H, P] in x's dtype; final_state: [B, H, P, N] fp32.
    """
    from fla.ops.simple_gla import chunk_simple_gla

    n_heads, n_groups = x.shape[2], B.shape[2]
    if n_heads % n_groups:
        raise ValueError(f"ssd: {n_heads} heads of x are not divisible by {n_groups} groups of B/C")
    rep = n_heads // n_groups
    dt = _dt(dt, dt_bias, dt_limit)  # [B, T, H] fp32
    v = (x.float() * dt[..., None]).to(x.dtype)  # [B, T, H, P]
    # fla's simple GLA has one q/k head per v head: broadcast the groups
    q = C.to(x.dtype).repeat_interleave(rep, dim=2)  # [B, T, H, N]
    k = B.to(x.dtype).repeat_interleave(rep, dim=2)
    h0 = None if initial_state is None else initial_state.float().contiguous()
    y, final = chunk_simple_gla(q, k, v, g=dt * A.float(), scale=1.0, initial_state=h0,
                                output_final_state=True, state_v_first=True)
    if D is not None:
        y = torch.addcmul(y.float(), x.float(), D.float()[:, None]).to(x.dtype)
    return y.to(x.dtype), final
