"""Causal depthwise conv1d ops: the one dispatcher between the reference and a GPU kernel."""
from __future__ import annotations

import functools
import importlib
import importlib.util

import torch

from nanovl.ops.conv1d.ref import causal_conv1d_ref, causal_conv1d_update_ref
from nanovl.ops.dispatch import use_kernel


@functools.cache
def _kernel():
    # the Triton launchers live in kernel.py once written; until then every call takes the reference
    if importlib.util.find_spec(__name__ + ".kernel") is None:
        return None
    return importlib.import_module(__name__ + ".kernel")


def causal_conv1d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                  conv_state: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """Causal conv over a prompt; see `causal_conv1d_ref` for shapes."""
    if use_kernel("causal_conv1d", x, weight) and (k := _kernel()) is not None:
        return k.causal_conv1d_triton(x, weight, bias, conv_state, activation)
    return causal_conv1d_ref(x, weight, bias, conv_state, activation)


def causal_conv1d_update(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                         bias: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """One decode step of the causal conv; see `causal_conv1d_update_ref` for shapes."""
    if use_kernel("causal_conv1d_update", x, conv_state, weight) and (k := _kernel()) is not None:
        return k.causal_conv1d_update_triton(x, conv_state, weight, bias, activation)
    return causal_conv1d_update_ref(x, conv_state, weight, bias, activation)


__all__ = ["causal_conv1d", "causal_conv1d_update", "causal_conv1d_ref", "causal_conv1d_update_ref"]
