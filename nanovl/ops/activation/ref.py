"""Plain-PyTorch squared ReLU, the activation of the hybrid LM's MLP blocks (SPEC Part B §1b)."""
from __future__ import annotations

import torch


def relu_square_ref(x: torch.Tensor) -> torch.Tensor:
    """relu(x)^2 elementwise.

    Args:
        x: any shape, any float dtype.
    Returns:
        same shape and dtype (the square rounds once, as torch's two-op form does).
    """
    return torch.relu(x).square()
