"""Plain-PyTorch linear layer (`F.linear`, i.e. cuBLAS on the GPU): the reference twin of the skinny GEMM."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nanovl.ops.activation.ref import relu_square_ref
from nanovl.ops.norm.ref import add_rms_norm_ref


def linear_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """y = x @ weight.T + bias, as `nn.Linear` computes it.

    Args:
        x: [..., K].
        weight: [N, K] (nn.Linear layout), same dtype as x.
        bias: [N] or None.
    Returns:
        [..., N] in x's dtype.
    """
    return F.linear(x, weight, bias)


def linear_relu_square_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """relu(linear_ref(x, weight, bias))^2: the MLP's up projection and its activation, as two ops
    (the product rounds to x's dtype before the square, which rounds again)."""
    return relu_square_ref(linear_ref(x, weight, bias))


def add_rms_norm_linear_ref(x: torch.Tensor, residual: torch.Tensor, norm_weight: torch.Tensor, eps: float,
                            weight: torch.Tensor, bias: torch.Tensor | None = None,
                            relu_square: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """A pre-norm block's residual add, its norm and its first projection, as three ops.

    Args:
        x: [..., K] the previous block's output; residual: [..., K] the stream (same dtype);
        norm_weight: [K], eps: the RMSNorm's; weight: [N, K], bias: [N] or None: the projection's;
        relu_square: square the relu of the projection (the MLP's up projection).
    Returns:
        (y [..., N], s [..., K]): s = residual + x rounded to x's dtype, y = projection(rms_norm(s)).
    """
    normed, summed = add_rms_norm_ref(x, residual, norm_weight, eps)
    y = linear_relu_square_ref(normed, weight, bias) if relu_square else linear_ref(normed, weight, bias)
    return y, summed
