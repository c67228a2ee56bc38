"""Plain-PyTorch RMSNorm and the grouped gated RMSNorm of the Mamba2 mixer (SPEC Part B §1b, §2.7)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def rms_norm_ref(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last dim, computed in fp32.

    Args:
        x: [..., D] any float dtype.
        weight: [D].
        eps: added to the mean square.
    Returns:
        [..., D] in x's dtype; the weight multiply happens in fp32 before the cast (as Nemotron-H does).
    """
    x32 = x.float()
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.float() * x32).to(x.dtype)


def add_rms_norm_ref(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                     eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The pre-norm block's residual add and the next norm: s = residual + x; (rms_norm(s), s).

    Args:
        x: [..., D] a block's output; residual: [..., D] the stream it adds to (same dtype).
        weight: [D]; eps: added to the mean square.
    Returns:
        (normed [..., D], s [..., D]), both in x's dtype; the norm reads s as rounded to that dtype,
        so the pair equals the unfused `s = residual + x; rms_norm_ref(s)` exactly.
    """
    summed = residual + x
    return rms_norm_ref(summed, weight, eps), summed


def gated_rms_norm_ref(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, n_groups: int,
                       eps: float) -> torch.Tensor:
    """Gate then normalize per group: u = x * silu(z); u_g /= rms(u_g); out = weight * u.

    Args:
        x: [..., D] the SSM output y.
        z: [..., D] the gate (same shape as x).
        weight: [D].
        n_groups: D is split into n_groups contiguous groups, each normalized on its own.
        eps: added to each group's mean square.
    Returns:
        [..., D] in x's dtype (all math in fp32, norm_before_gate=False semantics).
    """
    *lead, d = x.shape
    if d % n_groups:
        raise ValueError(f"gated_rms_norm: last dim {d} of x is not divisible by n_groups={n_groups}")
    u = x.float() * F.silu(z.float())
    u = u.view(*lead, n_groups, d // n_groups)
    u = u * torch.rsqrt(u.pow(2).mean(-1, keepdim=True) + eps)
    return (weight.float() * u.view(*lead, d)).to(x.dtype)
