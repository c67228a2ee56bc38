"""RMSNorm ops: the one dispatcher between the reference and a GPU kernel (STYLE.md section D)."""
from __future__ import annotations

import torch

from nanovl.ops.dispatch import run_op
from nanovl.ops.norm.ref import add_rms_norm_ref, gated_rms_norm_ref, rms_norm_ref


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm; see `rms_norm_ref` for shapes."""
    return run_op("rms_norm", __name__, "rms_norm_triton", rms_norm_ref, (x, weight, eps), (x, weight))


def add_rms_norm(x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor,
                 eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(rms_norm(residual + x), residual + x) in one kernel; see `add_rms_norm_ref`."""
    return run_op("add_rms_norm", __name__, "add_rms_norm_triton", add_rms_norm_ref,
                  (x, residual, weight, eps), (x, residual, weight))


def gated_rms_norm(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, n_groups: int,
                   eps: float) -> torch.Tensor:
    """Grouped gated RMSNorm; see `gated_rms_norm_ref` for shapes."""
    return run_op("gated_rms_norm", __name__, "gated_rms_norm_triton", gated_rms_norm_ref,
                  (x, z, weight, n_groups, eps), (x, z, weight))


__all__ = ["rms_norm", "add_rms_norm", "gated_rms_norm", "rms_norm_ref", "add_rms_norm_ref",
           "gated_rms_norm_ref"]
