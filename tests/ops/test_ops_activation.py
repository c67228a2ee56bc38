"""Squared ReLU (the MLP activation) against its formula (CPU)."""
from __future__ import annotations

import torch

from nanovl.ops.activation import relu_square


def test_relu_square():
    x = torch.tensor([-2.0, -0.0, 0.0, 0.5, 3.0])
    assert torch.equal(relu_square(x), torch.tensor([0.0, 0.0, 0.0, 0.25, 9.0]))
    xb = torch.randn(4, 33).bfloat16()
    out = relu_square(xb)
    assert out.dtype == torch.bfloat16 and out.shape == xb.shape
    assert torch.equal(out, (xb.float().clamp_min(0) ** 2).bfloat16())
