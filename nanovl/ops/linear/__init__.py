"""Linear layer: a Triton skinny GEMM for decode-sized inputs (<= 16 rows), cuBLAS (`F.linear`) otherwise.

Env `NANOVL_SKINNY_GEMM=0` keeps cuBLAS for every call.
"""
from __future__ import annotations

import os

import torch

from nanovl.ops.activation import relu_square
from nanovl.ops.dispatch import run_op
from nanovl.ops.linear.ref import linear_ref, linear_relu_square_ref

# most rows of x the skinny kernel serves; past it a prefill-sized GEMM is cuBLAS's job
MAX_ROWS = 16
_KERNEL_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _fits_skinny(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """True when the skinny kernel may serve this call (run_op still checks device and Triton)."""
    if os.environ.get("NANOVL_SKINNY_GEMM", "1") == "0":
        return False
    if x.dim() == 0 or weight.dim() != 2 or x.shape[-1] != weight.shape[1] or weight.shape[1] == 0:
        return False
    if x.dtype not in _KERNEL_DTYPES or weight.dtype != x.dtype:
        return False
    if weight.stride(1) != 1:  # a transposed weight: cuBLAS reads it in place, the kernel would copy it
        return False
    if bias is not None and (bias.dtype != x.dtype or bias.shape != weight.shape[:1]):
        return False
    return 0 < x.shape[:-1].numel() <= MAX_ROWS


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ weight.T + bias; see `linear_ref` for shapes."""
    # the kernel only for few rows of one float dtype; anything else (prefill, odd inputs) is F.linear
    if not _fits_skinny(x, weight, bias):
        return linear_ref(x, weight, bias)
    return run_op("linear", __name__, "skinny_linear_triton", linear_ref, (x, weight, bias), (x, weight, bias))


def linear_relu_square(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """relu(x @ weight.T + bias)^2; see `linear_relu_square_ref`. At decode one kernel (the square in
    the projection's epilogue saves a launch per MLP layer); otherwise cuBLAS, then `relu_square`."""
    if not _fits_skinny(x, weight, bias):
        return relu_square(linear_ref(x, weight, bias))
    return run_op("linear_relu_square", __name__, "skinny_linear_relu_square_triton", linear_relu_square_ref,
                  (x, weight, bias), (x, weight, bias))


__all__ = ["linear", "linear_ref", "linear_relu_square", "linear_relu_square_ref", "MAX_ROWS"]
