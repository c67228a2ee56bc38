"""Pixel shuffle v2 and mlp1 against an index-by-index construction of SPEC Part D.

Run: python -m pytest tests/model/test_projector_shuffle.py
"""
from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from nanovl.model.projector import build_mlp1, pixel_shuffle, shuffle_and_project


def _shuffle_ref(x: torch.Tensor) -> torch.Tensor:
    """SPEC Part D: out[n, i, j] = [x[2i,2j], x[2i,2j+1], x[2i+1,2j], x[2i+1,2j+1]] along channels."""
    n, h, w, c = x.shape
    out = torch.zeros(n, h // 2, w // 2, 4 * c, dtype=x.dtype)
    for b in range(n):
        for i in range(h // 2):
            for j in range(w // 2):
                for k, (dr, dc) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
                    out[b, i, j, k * c:(k + 1) * c] = x[b, 2 * i + dr, 2 * j + dc]
    return out


def _mlp1_ref(v: torch.Tensor, w_norm, w1, w3, eps=1e-5) -> torch.Tensor:
    """One token vector at a time, in float64."""
    v, w_norm, w1, w3 = (t.detach().double() for t in (v, w_norm, w1, w3))
    rms = (sum(float(a) ** 2 for a in v) / v.numel() + eps) ** 0.5
    u = (v / rms) * w_norm
    hidden = torch.tensor([max(float(row @ u), 0.0) ** 2 for row in w1], dtype=torch.float64)
    return w3 @ hidden


@pytest.mark.parametrize("hw", [(4, 4), (2, 6), (6, 4)], ids=["4x4", "2x6", "6x4"])
def test_pixel_shuffle_layout(hw):
    x = torch.randn(2, *hw, 3)
    assert torch.equal(pixel_shuffle(x), _shuffle_ref(x))


def test_pixel_shuffle_distinguishes_row_and_col_parity():
    # a labelled grid: every value encodes (row, col, channel) so a swapped block is visible
    h, w, c = 4, 4, 2
    x = torch.tensor([[[100 * r + 10 * q + ch for ch in range(c)] for q in range(w)] for r in range(h)],
                     dtype=torch.float32)[None]
    out = pixel_shuffle(x)
    assert out[0, 1, 0].tolist() == [200, 201, 210, 211, 300, 301, 310, 311]


def test_pixel_shuffle_rejects_odd_grid():
    with pytest.raises(ValueError, match="even"):
        pixel_shuffle(torch.randn(1, 3, 4, 2))


def test_shuffle_and_project_matches_tokenwise_reference():
    torch.manual_seed(0)
    c, hidden, d = 4, 12, 6
    mlp1 = build_mlp1(4 * c, hidden, d)
    with torch.no_grad():
        mlp1[0].weight.uniform_(0.5, 1.5)
    rows, cols = 2, 4
    feats = torch.randn(2, rows * cols, c)
    with torch.no_grad():
        out = shuffle_and_project(feats, rows, cols, mlp1)
    assert out.shape == (2, 2, d)
    grid = feats.reshape(2, rows, cols, c)
    for n in range(2):
        for i in range(rows // 2):
            for j in range(cols // 2):
                v = torch.cat([grid[n, 2 * i, 2 * j], grid[n, 2 * i, 2 * j + 1],
                               grid[n, 2 * i + 1, 2 * j], grid[n, 2 * i + 1, 2 * j + 1]])
                want = _mlp1_ref(v, mlp1[0].weight, mlp1[1].weight, mlp1[3].weight)
                assert_close(f"token ({n},{i},{j})", want, out[n, i * (cols // 2) + j], atol=1e-5, rtol=1e-5)


def test_mlp1_keys_and_bf16_norm_in_fp32():
    mlp1 = build_mlp1(8, 16, 4)
    assert sorted(mlp1.state_dict()) == ["0.weight", "1.weight", "3.weight"]
    x = torch.randn(3, 8) * 1000
    ref = mlp1[0](x)
    out = mlp1[0].to(torch.bfloat16)(x.to(torch.bfloat16))
    assert out.dtype == torch.bfloat16
    assert_close("rmsnorm bf16", ref, out, atol=2e-2, rtol=2e-2)
