"""Plain-PyTorch causal depthwise conv1d with a rolling state (the Mamba2 xBC convolution, SPEC §2.2).

Layout follows the causal-conv1d package: channels first, `x: [B, C, T]`, state `[B, C, K-1]`
holding the last K-1 inputs (oldest first).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _activate(y: torch.Tensor, activation: str | None) -> torch.Tensor:
    if activation is None:
        return y
    if activation == "silu":
        return F.silu(y)
    raise ValueError(f"causal_conv1d: unsupported activation {activation!r} (expected 'silu' or None)")


def causal_conv1d_ref(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                      conv_state: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """Causal depthwise conv over time, starting from `conv_state` (zeros when None).

    Args:
        x: [B, C, T] inputs (may be a transposed view).
        weight: [C, K] one filter per channel.
        bias: [C] or None.
        conv_state: [B, C, K-1] the K-1 inputs before x[..., 0]; updated IN PLACE to the last
            K-1 inputs of (state ++ x). None means a zero history and no state kept.
        activation: "silu" or None.
    Returns:
        [B, C, T] in x's dtype (accumulated in fp32).
    """
    b, c, t = x.shape
    k = weight.shape[-1]
    if weight.shape != (c, k):
        raise ValueError(f"causal_conv1d: weight shape {tuple(weight.shape)} does not match x channels {c}")
    if conv_state is None:
        history = x.new_zeros(b, c, k - 1)
    elif conv_state.shape != (b, c, k - 1):
        raise ValueError(f"causal_conv1d: conv_state shape {tuple(conv_state.shape)} != {(b, c, k - 1)}")
    else:
        history = conv_state.to(x.dtype)
    full = torch.cat([history, x], dim=-1)  # [B, C, K-1+T]
    y = F.conv1d(full.float(), weight.float().unsqueeze(1), None if bias is None else bias.float(), groups=c)
    if conv_state is not None and k > 1:
        conv_state.copy_(full[:, :, full.shape[-1] - (k - 1):])
    return _activate(y, activation).to(x.dtype)


def causal_conv1d_update_ref(x: torch.Tensor, conv_state: torch.Tensor, weight: torch.Tensor,
                             bias: torch.Tensor | None = None, activation: str | None = "silu") -> torch.Tensor:
    """One decode step of the causal conv.

    Args:
        x: [B, C] the new input column.
        conv_state: [B, C, K-1] previous inputs; updated IN PLACE (shifted left, x appended).
        weight: [C, K]; bias: [C] or None; activation: "silu" or None.
    Returns:
        [B, C] in x's dtype.
    """
    k = weight.shape[-1]
    window = torch.cat([conv_state.to(x.dtype), x.unsqueeze(-1)], dim=-1)  # [B, C, K]
    y = (window.float() * weight.float()).sum(-1)
    if bias is not None:
        y = y + bias.float()
    if k > 1:
        conv_state.copy_(window[:, :, 1:])
    return _activate(y, activation).to(x.dtype)
