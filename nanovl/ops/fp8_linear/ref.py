"""Plain-PyTorch FP8 linear layer: the reference twin of the kernels, and the CPU path. Scales are
per tensor (ModelOpt's "FP8": one weight scale, a calibrated input scale; what the kernels run) or
per output channel and per token (its "FP8_PER_CHANNEL_PER_TOKEN": the reference only).

The weight is stored in float8_e4m3fn with its fp32 `weight_scale`; the input is quantized to
e4m3 with its `input_scale` before the product, as the checkpoint was evaluated (ModelOpt
fake-quantizes the input the same way). All products of two e4m3 values are
exact in fp32, so the fp32 matmul below is the definition; kernels may only sum in another order.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nanovl.ops.activation.ref import relu_square_ref

FP8_DTYPE = torch.float8_e4m3fn
FP8_MAX = 448.0  # largest finite e4m3fn value
# rows of the weight dequantized at a time: a 12B projection in fp32 at once would be ~0.4 GB a call
_ROWS_PER_CHUNK = 4096


def quantize_fp8_ref(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x * (1 / scale) rounded to the nearest e4m3 value (ties to even), saturated at +-448.

    The reciprocal is taken once (fp32, IEEE) and x multiplied by it, as vLLM's quantization does:
    a kernel then quantizes each value with one multiply instead of a division.

    Args:
        x: any shape, any float dtype.
        scale: fp32, one element (per tensor) or broadcastable to x (e.g. [..., 1]: per row).
    Returns:
        float8_e4m3fn tensor of x's shape.
    """
    scale = scale.float().reshape(()) if scale.numel() == 1 else scale.float()
    return (x.float() * torch.reciprocal(scale)).clamp(-FP8_MAX, FP8_MAX).to(FP8_DTYPE)


def per_token_scale(x: torch.Tensor) -> torch.Tensor:
    """Each row's dynamic input scale, amax(|row|) / 448 ([..., 1], fp32): ModelOpt's
    FP8_PER_CHANNEL_PER_TOKEN quantizes activations so, with no calibrated scale."""
    return (x.detach().abs().amax(-1, keepdim=True).float() / FP8_MAX).clamp_min(1e-12)


def fp8_linear_ref(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                   input_scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = (q(x) @ weight.T) * (input_scale * weight_scale) + bias, q(x) = quantize_fp8_ref(x, input_scale).

    Args:
        x: [..., K] bf16, fp16 or fp32.
        weight: [N, K] float8_e4m3fn (nn.Linear layout).
        weight_scale: fp32, one element (per tensor) or N (per output channel, any shape of N values).
        input_scale: fp32, one element (per tensor) or [..., 1] matching x's rows (per token,
            `per_token_scale`).
        bias: [N] or None.
    Returns:
        [..., N] in x's dtype (the scale and bias apply in fp32, then one rounding).
    """
    n = weight.shape[0] if weight.dim() == 2 else -1
    if weight.dtype != FP8_DTYPE or weight.dim() != 2 or x.shape[-1] != weight.shape[1]:
        raise ValueError(f"fp8_linear: x {tuple(x.shape)}, weight {tuple(weight.shape)} {weight.dtype}: "
                         f"expected a [N, {x.shape[-1]}] float8_e4m3fn weight")
    if weight_scale.numel() not in (1, n):
        raise ValueError(f"fp8_linear: weight_scale must hold one value or one per output ({n}), "
                         f"not {weight_scale.numel()}")
    if input_scale.numel() != 1 and tuple(input_scale.shape) != (*x.shape[:-1], 1):
        raise ValueError(f"fp8_linear: input_scale must hold one value or one per row of x "
                         f"({(*x.shape[:-1], 1)}), not {tuple(input_scale.shape)}")
    xq = quantize_fp8_ref(x, input_scale).float()
    xs = input_scale.float().reshape(()) if input_scale.numel() == 1 else input_scale.float()
    ws = weight_scale.float().reshape(()) if weight_scale.numel() == 1 else weight_scale.float().reshape(n)
    scale = xs * ws
    parts = [F.linear(xq, weight[i:i + _ROWS_PER_CHUNK].float())
             for i in range(0, weight.shape[0], _ROWS_PER_CHUNK)]
    if not parts:  # no output features
        parts = [F.linear(xq, weight.float())]
    y = (torch.cat(parts, dim=-1) if len(parts) != 1 else parts[0]) * scale
    if bias is not None:
        y = y + bias.float()
    return y.to(x.dtype)


def fp8_linear_relu_square_ref(x: torch.Tensor, weight: torch.Tensor, weight_scale: torch.Tensor,
                               input_scale: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """relu(fp8_linear_ref(...))^2: the MLP's up projection and its activation (two roundings, as
    `linear_relu_square_ref`)."""
    return relu_square_ref(fp8_linear_ref(x, weight, weight_scale, input_scale, bias))
