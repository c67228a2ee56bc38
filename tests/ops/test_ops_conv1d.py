"""Causal depthwise conv1d (prompt and one-step forms) vs an explicit per-tap sum (CPU)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from helpers import assert_close
from nanovl.ops.conv1d import causal_conv1d, causal_conv1d_update


def _explicit(x, weight, bias, history):
    """y[b, c, t] = silu(bias[c] + sum_k w[c, k] * xx[b, c, t + k]) over xx = history ++ x."""
    xx = torch.cat([history, x], dim=-1).double()
    k = weight.shape[1]
    out = torch.zeros(x.shape, dtype=torch.float64)
    for t in range(x.shape[-1]):
        out[:, :, t] = (xx[:, :, t:t + k] * weight.double()).sum(-1) + bias.double()
    return F.silu(out)


@pytest.mark.parametrize("k", [1, 2, 3, 4])
@pytest.mark.parametrize("t_len", [1, 3, 10])
def test_causal_conv1d(k, t_len):
    b, c = 2, 6
    x, w, bias = torch.randn(b, c, t_len), torch.randn(c, k), torch.randn(c)
    hist = torch.randn(b, c, k - 1)
    state = hist.clone()
    y = causal_conv1d(x, w, bias, conv_state=state)
    assert_close("y", _explicit(x, w, bias, hist), y, atol=1e-5, rtol=1e-5)
    full = torch.cat([hist, x], dim=-1)
    if k > 1:
        assert torch.equal(full[:, :, full.shape[-1] - (k - 1):], state), "state must hold the last K-1 inputs"
    else:
        assert state.shape == (b, c, 0)
    y0 = causal_conv1d(x, w, bias)
    assert_close("y_zero_history", _explicit(x, w, bias, torch.zeros_like(hist)), y0, atol=1e-5, rtol=1e-5)


def test_causal_conv1d_channels_last_view():
    x = torch.randn(2, 9, 5)  # [B, T, C] as the model's in_proj produces it
    w, bias = torch.randn(5, 4), torch.randn(5)
    y = causal_conv1d(x.transpose(1, 2), w, bias)
    assert_close("y", _explicit(x.transpose(1, 2).contiguous(), w, bias, torch.zeros(2, 5, 3)), y)


@pytest.mark.parametrize("k", [2, 4])
def test_causal_conv1d_update(k):
    b, c, t_len = 3, 5, 7
    x, w, bias = torch.randn(b, c, t_len), torch.randn(c, k), torch.randn(c)
    hist = torch.randn(b, c, k - 1)
    ref_state = hist.clone()
    ref = causal_conv1d(x, w, bias, conv_state=ref_state)
    state = hist.clone()
    for t in range(t_len):
        y = causal_conv1d_update(x[:, :, t], state, w, bias)
        assert_close(f"y[{t}]", ref[:, :, t], y)
    assert_close("state", ref_state, state, atol=0, rtol=0)


def test_causal_conv1d_bad_shapes():
    with pytest.raises(ValueError, match="conv_state"):
        causal_conv1d(torch.randn(1, 4, 3), torch.randn(4, 3), None, conv_state=torch.zeros(1, 4, 1))
    with pytest.raises(ValueError, match="weight"):
        causal_conv1d(torch.randn(1, 4, 3), torch.randn(5, 3))
