"""Causal depthwise conv1d ops: the one dispatcher between the reference and a GPU kernel."""
from __future__ import annotations

import torch

from nanovl.ops.conv1d.ref import causal_conv1d_ref, causal_conv1d_update_ref
from nanovl.ops.dispatch import run_op


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  conv_state: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """Causal conv over a prompt; see `causal_conv1d_ref` for shapes."""
    return run_op("causal_conv1d", __name__, "causal_conv1d_triton", causal_conv1d_ref,
                  (x, weight, bias, conv_state, activation), (x, weight))


def causal_conv1d_update(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """One decode step of the causal conv; see `causal_conv1d_update_ref` for shapes."""
    return run_op("causal_conv1d_update", __name__, "causal_conv1d_update_triton", causal_conv1d_update_ref,
                  (x, conv_state, weight, bias, activation), (x, conv_state, weight))


__all__ = ["causal_conv1d", "causal_conv1d_update", "causal_conv1d_ref", "causal_conv1d_update_ref"]
