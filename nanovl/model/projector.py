"""Pixel shuffle (ps_version v2, scale 0.5) and the `mlp1` projector (SPEC Part D).

`mlp1` = Sequential(RMSNorm, Linear, relu², Linear), so its keys are `mlp1.0.weight`,
`mlp1.1.weight`, `mlp1.3.weight` as in the checkpoint.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nanovl.ops.norm import rms_norm


def pixel_shuffle(x: torch.Tensor) -> torch.Tensor:
    """Merge each 2x2 patch neighbourhood into one token (ps_version v2, downsample 0.5).

    Args:
        x: [N, H, W, C] patch features, H and W even (H != W allowed).
    Returns:
        [N, H/2, W/2, 4C] with out[n, i, j] = concat(x[2i, 2j], x[2i, 2j+1], x[2i+1, 2j], x[2i+1, 2j+1]),
        i.e. channel block (row_parity * 2 + col_parity).
    """
    if x.dim() != 4:
        raise ValueError(f"pixel_shuffle input must be [N, H, W, C], got shape {tuple(x.shape)}")
    n, h, w, c = x.shape
    if h % 2 or w % 2:
        raise ValueError(f"pixel_shuffle needs an even patch grid, got {h}x{w}")
    x = x.reshape(n, h // 2, 2, w // 2, 2, c)  # [n, i, row_parity, j, col_parity, c]
    return x.permute(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c)


class RMSNorm(nn.Module):
    """RMSNorm computed in fp32 with the weight multiply in fp32, then cast back (HF remote code)."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)


class SquaredReLU(nn.Module):
    """relu(x)²."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x).square()


def build_mlp1(in_dim: int, hidden_dim: int, out_dim: int, eps: float = 1e-5) -> nn.Sequential:
    """The projector: RMSNorm(in_dim) -> Linear(in_dim, hidden_dim) -> relu² -> Linear(hidden_dim, out_dim).

    Args:
        in_dim: 4 * vit_hidden_size (after pixel shuffle).
        hidden_dim: projector_hidden_size.
        out_dim: the LM hidden size.
    Returns:
        nn.Sequential mapping [..., in_dim] -> [..., out_dim]; no biases.
    """
    return nn.Sequential(
        RMSNorm(in_dim, eps=eps),
        nn.Linear(in_dim, hidden_dim, bias=False),
        SquaredReLU(),
        nn.Linear(hidden_dim, out_dim, bias=False),
    )


def shuffle_and_project(features: torch.Tensor, rows: int, cols: int, mlp1: nn.Module) -> torch.Tensor:
    """ViT patch features -> LM-space image tokens.

    Args:
        features: [N, rows*cols, C] in raster order (row-major).
        rows, cols: the patch grid (both even).
        mlp1: the projector from `build_mlp1`.
    Returns:
        [N, rows*cols/4, D_text], raster order over the shuffled (rows/2, cols/2) grid.
    """
    n, t, c = features.shape
    if t != rows * cols:
        raise ValueError(f"features have {t} patches, expected rows*cols = {rows}*{cols}")
    x = pixel_shuffle(features.reshape(n, rows, cols, c))
    return mlp1(x.reshape(n, (rows // 2) * (cols // 2), 4 * c))
