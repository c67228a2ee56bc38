"""The LM's Linear: nn.Linear's parameters and keys, its forward routed through ops.linear (CPU)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nanovl.model import linear as linear_module
from nanovl.model.linear import Linear


def test_linear_keeps_nn_linear_keys_and_math():
    layer = Linear(6, 4, bias=True)
    assert set(layer.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 3, 6)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))


def test_linear_forward_goes_through_the_op(monkeypatch):
    calls = []

    def spy(x, weight, bias=None):
        calls.append(tuple(x.shape))
        return F.linear(x, weight, bias)

    monkeypatch.setattr(linear_module, "linear", spy)
    Linear(6, 4, bias=False)(torch.randn(1, 1, 6))
    assert calls == [(1, 1, 6)]
