"""Linear layer: a Triton skinny GEMM for decode-sized inputs (<= 16 rows), cuBLAS (`F.linear`) otherwise;
and a pre-norm block's residual add + RMSNorm + first projection, one kernel at decode.

Env `NANOVL_SKINNY_GEMM=0` keeps cuBLAS for every call; `NANOVL_FUSED_NORM=0` keeps the pre-norm
as its own kernel before the projection (for benchmarks of what the fusion saves).
"""
from __future__ import annotations

import os

import torch

from nanovl.ops.activation import relu_square
from nanovl.ops.dispatch import run_op
from nanovl.ops.linear.ref import add_rms_norm_linear_ref, linear_ref, linear_relu_square_ref
from nanovl.ops.norm import add_rms_norm

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


def add_rms_norm_linear(x: torch.Tensor, residual: torch.Tensor, norm_weight: torch.Tensor, eps: float,
                        weight: torch.Tensor, bias: torch.Tensor | None = None, *,
                        relu_square: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(projection(rms_norm(residual + x)), residual + x); see `add_rms_norm_linear_ref`. At decode
    one kernel (the norm's launch saved: one per block); otherwise `add_rms_norm`, then the projection."""
    args = (x, residual, norm_weight, eps, weight, bias, relu_square)
    fusable = os.environ.get("NANOVL_FUSED_NORM", "1") != "0" and _fits_skinny(x, weight, bias)
    if not fusable or residual.shape != x.shape or residual.dtype != x.dtype:
        normed, summed = add_rms_norm(x, residual, norm_weight, eps)
        y = linear_relu_square(normed, weight, bias) if relu_square else linear(normed, weight, bias)
        return y, summed
    return run_op("add_rms_norm_linear", __name__, "add_rms_norm_linear_triton", add_rms_norm_linear_ref,
                  args, (x, residual, norm_weight, weight))


__all__ = ["linear", "linear_ref", "linear_relu_square", "linear_relu_square_ref", "add_rms_norm_linear",
           "add_rms_norm_linear_ref", "MAX_ROWS"]
