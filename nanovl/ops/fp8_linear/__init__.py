"""FP8 linear layer (e4m3 weight and its scales; `ref.py` defines it).

At decode (<= 16 rows) the skinny GEMM of `ops.linear` streams the e4m3 weight, half the bytes of
bf16, and quantizes x inside the kernel; on more rows x is quantized once and the product is
torch's `_scaled_mm` on the FP8 tensor cores. CPU tensors, and per-channel / per-token scales
anywhere, take the reference.
"""
from __future__ import annotations

import os

import torch

from nanovl.ops.dispatch import run_op
from nanovl.ops.fp8_linear.ref import (FP8_DTYPE, FP8_MAX, fp8_linear_ref, fp8_linear_relu_square_ref,
                                       per_token_scale, quantize_fp8_ref)
from nanovl.ops.linear import MAX_ROWS

_X_DTYPES = (torch.bfloat16, torch.float16, torch.float32)


def _path(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> str:
    """'skinny', 'gemm' or 'ref' for this call (run_op still checks device and Triton)."""
    if x.dim() == 0 or weight.dim() != 2 or x.shape[-1] != weight.shape[1] or weight.dtype != FP8_DTYPE:
        return "ref"  # the reference raises the clear error
    if x.dtype not in _X_DTYPES or weight.stride(1) != 1 or weight.shape[1] == 0:
        return "ref"
    if bias is not None and (bias.dtype != x.dtype or bias.shape != weight.shape[:1]):
        return "ref"
    rows = x.shape[:-1].numel()
    if 0 < rows <= MAX_ROWS and os.environ.get("NANOVL_SKINNY_GEMM", "1") != "0":
        return "skinny"
    # cuBLASLt's FP8 GEMM wants both inner sizes in multiples of 16; its fp32 output is untested
    # on a GPU so far, so fp32 activations keep the reference there
    if rows > 0 and weight.shape[0] % 16 == 0 and weight.shape[1] % 16 == 0 and x.dtype != torch.float32:
        return "gemm"
    return "ref"


def _launch(op: str, x, weight, weight_scale, input_scale, bias, relu_square: bool):
    ref = fp8_linear_relu_square_ref if relu_square else fp8_linear_ref
    # the kernels take per-tensor scales; per-channel / per-token ones are the reference's
    per_tensor = weight_scale.numel() == 1 and input_scale.numel() == 1
    path = _path(x, weight, bias) if per_tensor else "ref"
    if path == "ref":
        return ref(x, weight, weight_scale, input_scale, bias)
    args = (x, weight, weight_scale, input_scale, bias)
    launcher = {("skinny", False): "skinny_fp8_linear_triton", ("skinny", True): "skinny_fp8_linear_relu_square_triton",
                ("gemm", False): "scaled_mm_fp8_linear", ("gemm", True): "scaled_mm_fp8_linear_relu_square"}
    return run_op(f"{op}[{path}]", __name__, launcher[path, relu_square], ref, args, (x, weight, bias))


def fp8_linear(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor, input_scale: torch.Tensor,
               bias: torch.Tensor | None = None) -> torch.Tensor:
    """(q(x) @ weight.T) * input_scale * weight_scale + bias; see `fp8_linear_ref` for shapes."""
    return _launch("fp8_linear", x, weight, weight_scale, input_scale, bias, False)


def fp8_linear_relu_square(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                           input_scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """relu(fp8_linear(...))^2; at decode the square is in the projection's epilogue."""
    return _launch("fp8_linear_relu_square", x, weight, weight_scale, input_scale, bias, True)


__all__ = ["FP8_DTYPE", "FP8_MAX", "fp8_linear", "fp8_linear_ref", "fp8_linear_relu_square",
           "fp8_linear_relu_square_ref", "per_token_scale", "quantize_fp8_ref"]
