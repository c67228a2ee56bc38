"""RMSNorm ops: the one dispatcher between the reference and a GPU kernel (STYLE.md section D)."""
from __future__ import annotations

import functools
import importlib
import importlib.util

import torch

from nanovl.ops.dispatch import use_kernel
from nanovl.ops.norm.ref import gated_rms_norm_ref, rms_norm_ref


@functools.cache
def _kernel():
    # the Triton launchers live in kernel.py once written; until then every call takes the reference
    if importlib.util.find_spec(__name__ + ".kernel") is None:
        return None
    return importlib.import_module(__name__ + ".kernel")


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm; see `rms_norm_ref` for shapes."""
    if use_kernel("rms_norm", x, weight) and (k := _kernel()) is not None:
        return k.rms_norm_triton(x, weight, eps)
    return rms_norm_ref(x, weight, eps)


def gated_rms_norm(x: torch.Tensor, z: torch.Tensor, weight: torch.Tensor, n_groups: int,
                   eps: float) -> torch.Tensor:
    """Grouped gated RMSNorm; see `gated_rms_norm_ref` for shapes."""
    if use_kernel("gated_rms_norm", x, z, weight) and (k := _kernel()) is not None:
        return k.gated_rms_norm_triton(x, z, weight, n_groups, eps)
    return gated_rms_norm_ref(x, z, weight, n_groups, eps)


__all__ = ["rms_norm", "gated_rms_norm", "rms_norm_ref", "gated_rms_norm_ref"]
