"""Plain-PyTorch linear layer (`F.linear`, i.e. cuBLAS on the GPU): the reference twin of the skinny GEMM."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nanovl.ops.activation.ref import relu_square_ref


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
