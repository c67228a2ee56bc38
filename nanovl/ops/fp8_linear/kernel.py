"""FP8 linear kernels: the skinny GEMM of `ops.linear` on an e4m3 weight (decode), and for more
rows a Triton quantization of x followed by torch's `_scaled_mm` (cuBLASLt's FP8 GEMM, fp32
accumulation: no fast accumulation, whose partial sums would drift from the reference)."""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from nanovl.ops.activation import relu_square
from nanovl.ops.linear.kernel import _skinny, quantize_e4m3


def skinny_fp8_linear_triton(x, weight, weight_scale, input_scale, bias=None):
    """`fp8_linear_ref` for at most 16 rows of x, in one kernel that quantizes x as it reads it."""
    return _skinny(x, weight, bias, relu_square=False, scales=_scales(weight_scale, input_scale))


def skinny_fp8_linear_relu_square_triton(x, weight, weight_scale, input_scale, bias=None):
    """`fp8_linear_relu_square_ref` for at most 16 rows of x, the square in the epilogue."""
    return _skinny(x, weight, bias, relu_square=True, scales=_scales(weight_scale, input_scale))


def _scales(weight_scale: torch.Tensor, input_scale: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    if weight_scale.numel() != 1 or input_scale.numel() != 1:
        raise ValueError("fp8_linear kernels: weight_scale and input_scale must hold one value each (per-tensor)")
    return weight_scale.float().reshape(1), input_scale.float().reshape(1)


@triton.jit
def _quantize_kernel(x, scale, out, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    v = tl.load(x + offs, mask=mask, other=0.0).to(tl.float32)
    # already an e4m3 value in fp32: the conversion is exact
    q = quantize_e4m3(v, tl.math.div_rn(1.0, tl.load(scale)))
    tl.store(out + offs, q.to(tl.float8e4nv), mask=mask)


def quantize_fp8_triton(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """`quantize_fp8_ref`: x * (1 / scale) rounded to e4m3 (ties to even), saturated at +-448, in one pass."""
    if scale.numel() != 1:
        raise ValueError("quantize_fp8: the scale must hold one value (per-tensor)")
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.float8_e4m3fn, device=x.device)
    n = x.numel()
    if n:
        _quantize_kernel[(triton.cdiv(n, 4096),)](x, scale.float().reshape(1), out, n, BLOCK=4096)
    return out


def scaled_mm_fp8_linear(x, weight, weight_scale, input_scale, bias=None):
    """`fp8_linear_ref` for any number of rows (inner sizes multiples of 16), on the FP8 tensor cores."""
    n, k = weight.shape
    x2 = x.reshape(-1, k)
    xq = quantize_fp8_triton(x2, input_scale)
    ws, xs = _scales(weight_scale, input_scale)
    # cuBLASLt adds a bf16 / fp16 bias in its fp32 epilogue, as the reference does; an fp32 output
    # takes it after (in fp32 both ways)
    fused_bias = bias if bias is not None and x.dtype != torch.float32 else None
    y = torch._scaled_mm(xq, weight.t(), scale_a=xs.reshape(()), scale_b=ws.reshape(()), bias=fused_bias,
                         out_dtype=x.dtype)
    if bias is not None and fused_bias is None:
        y = y + bias
    return y.view(*x.shape[:-1], n)


def scaled_mm_fp8_linear_relu_square(x, weight, weight_scale, input_scale, bias=None):
    """relu(scaled_mm_fp8_linear(...))^2 (the MLP's up projection at prefill)."""
    return relu_square(scaled_mm_fp8_linear(x, weight, weight_scale, input_scale, bias))
