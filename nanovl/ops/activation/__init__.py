"""Activation ops: the one dispatcher between the reference and a GPU kernel (STYLE.md section D)."""
from __future__ import annotations

import torch

from nanovl.ops.activation.ref import relu_square_ref
from nanovl.ops.dispatch import run_op


def relu_square(x: torch.Tensor) -> torch.Tensor:
    """relu(x)^2; see `relu_square_ref`."""
    return run_op("relu_square", __name__, "relu_square_triton", relu_square_ref, (x,), (x,))


__all__ = ["relu_square", "relu_square_ref"]
