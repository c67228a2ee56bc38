"""RADIO ViT vision encoder (SPEC Part C): CPE patch generator + pre-norm ViT blocks, no final norm.

Attribute names follow the official checkpoint, so `RadioVisionModel.state_dict()` keys equal
the checkpoint keys under `vision_model.` (`radio_model.model.patch_generator.*`, `...blocks.{j}.*`).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nanovl.config import VisionConfig

_GELU_APPROX = {"gelu": "none", "gelu_pytorch_tanh": "tanh", "gelu_new": "tanh"}


class ClsToken(nn.Module):
    """Prefix tokens (cls tokens then registers) stored as one `token` [num_prefix, D] parameter."""

    def __init__(self, num_tokens: int, dim: int):
        super().__init__()
        self.token = nn.Parameter(torch.zeros(num_tokens, dim))


class PatchGenerator(nn.Module):
    """Image -> patch embeddings + resized position embeddings, prefix tokens prepended."""

    def __init__(self, config: VisionConfig, num_prefix_tokens: int):
        super().__init__()
        self.patch_size = config.patch_size
        self.num_channels = config.num_channels
        self.max_grid = config.max_grid
        self.align_corners = config.cpe_align_corners
        dim = config.hidden_size
        patch_dim = config.num_channels * config.patch_size ** 2
        self.embedder = nn.Linear(patch_dim, dim, bias=False)
        self.pos_embed = nn.Parameter(torch.zeros(1, self.max_grid ** 2, dim))
        self.cls_token = ClsToken(num_prefix_tokens, dim)

    @property
    def num_prefix_tokens(self) -> int:
        return self.cls_token.token.shape[0]

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, C, H, W] -> [N, (H/p)*(W/p), C*p*p], patches in raster order, features ordered (c, y, x)."""
        n, c, h, w = pixel_values.shape
        p = self.patch_size
        x = pixel_values.reshape(n, c, h // p, p, w // p, p)
        return x.permute(0, 2, 4, 1, 3, 5).reshape(n, (h // p) * (w // p), c * p * p)

    def position_embeddings(self, rows: int, cols: int, dtype: torch.dtype) -> torch.Tensor:
        """CPE: resize the stored max grid to a square of side max(rows, cols), keep the top-left
        rows x cols window. Returns [1, rows*cols, D]."""
        g, side = self.max_grid, max(rows, cols)
        pos = self.pos_embed.reshape(1, g, g, -1).permute(0, 3, 1, 2).float()  # [1, D, g, g]
        if side != g:
            # in fp32: bf16 bilinear weights would shift every position a little
            pos = F.interpolate(pos, size=(side, side), mode="bilinear", align_corners=self.align_corners)
        pos = pos[:, :, :rows, :cols]
        return pos.flatten(2).transpose(1, 2).to(dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [N, C, H, W] (normalized) -> tokens [N, num_prefix + (H/p)*(W/p), D]."""
        rows, cols = pixel_values.shape[-2] // self.patch_size, pixel_values.shape[-1] // self.patch_size
        x = self.embedder(self.patchify(pixel_values).to(self.embedder.weight.dtype))
        x = x + self.position_embeddings(rows, cols, x.dtype)
        prefix = self.cls_token.token.to(x.dtype).unsqueeze(0).expand(x.shape[0], -1, -1)
        return torch.cat([prefix, x], dim=1)


class Attention(nn.Module):
    """Bidirectional multi-head self-attention with a fused qkv projection."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_dim = config.head_dim
        dim = config.hidden_size
        # order: [q, k, v], heads contiguous inside each third
        self.qkv = nn.Linear(dim, 3 * dim, bias=config.qkv_bias)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])  # [B, H, T, hd]
        return self.proj(y.transpose(1, 2).reshape(b, t, d))


class Mlp(nn.Module):
    """fc1 -> GELU -> fc2 (both with bias)."""

    def __init__(self, config: VisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.approximate = _GELU_APPROX[config.hidden_act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate=self.approximate))


class LayerScale(nn.Module):
    """Per-channel residual branch scale (`blocks.{j}.ls{1,2}.gamma`); only built if the checkpoint has it."""

    def __init__(self, dim: int):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Block(nn.Module):
    """Pre-norm ViT block: x + attn(LN1(x)), then x + mlp(LN2(x))."""

    def __init__(self, config: VisionConfig, *, use_layer_scale: bool = False):
        super().__init__()
        dim, eps = config.hidden_size, config.layer_norm_eps
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(config)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(config)
        self.ls1 = LayerScale(dim) if use_layer_scale else nn.Identity()
        self.ls2 = LayerScale(dim) if use_layer_scale else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class RadioViT(nn.Module):
    """The RADIO ViT (`radio_model.model` in the checkpoint).

    Args:
        config: the vision shape.
        num_prefix_tokens: cls + register rows of `patch_generator.cls_token.token`; defaults to
            the config's `num_cls_tokens + num_registers` (the loader reads it from the checkpoint).
        use_layer_scale: build `blocks.{j}.ls1/ls2.gamma` (absent from the Nano-2-VL checkpoint).
    """

    def __init__(self, config: VisionConfig, *, num_prefix_tokens: int | None = None,
                 use_layer_scale: bool = False):
        super().__init__()
        if num_prefix_tokens is None:
            num_prefix_tokens = config.num_prefix_tokens
        if num_prefix_tokens is None:
            raise ValueError("vision_config: num_cls_tokens/num_registers are not set and no "
                             "num_prefix_tokens was given (read it from patch_generator.cls_token.token)")
        if config.num_prefix_tokens is not None and config.num_prefix_tokens != num_prefix_tokens:
            raise ValueError(f"vision_config: num_cls_tokens + num_registers = {config.num_prefix_tokens} "
                             f"but patch_generator.cls_token.token has {num_prefix_tokens} rows")
        self.config = config
        self.patch_generator = PatchGenerator(config, num_prefix_tokens)
        self.blocks = nn.ModuleList(Block(config, use_layer_scale=use_layer_scale)
                                    for _ in range(config.num_hidden_layers))

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch features of normalized images.

        Args:
            pixel_values: [N, C, H, W]; H and W multiples of patch_size (H != W allowed).
        Returns:
            features: [N, (H/p)*(W/p), D], raster order over (row, col); prefix tokens dropped.
        """
        _check_pixels(pixel_values, self.config)
        x = self.patch_generator(pixel_values)
        for block in self.blocks:
            x = block(x)
        return x[:, self.patch_generator.num_prefix_tokens:]


class RadioVisionModel(nn.Module):
    """Holder giving the official key path `radio_model.model.*` (the VL model's `vision_model`)."""

    def __init__(self, config: VisionConfig, *, num_prefix_tokens: int | None = None,
                 use_layer_scale: bool = False):
        super().__init__()
        self.radio_model = nn.Module()
        self.radio_model.model = RadioViT(config, num_prefix_tokens=num_prefix_tokens,
                                          use_layer_scale=use_layer_scale)

    @property
    def vit(self) -> RadioViT:
        return self.radio_model.model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values [N, C, H, W] -> features [N, (H/p)*(W/p), D]; see RadioViT.forward."""
        return self.vit(pixel_values)


def _check_pixels(pixel_values: torch.Tensor, config: VisionConfig) -> None:
    if pixel_values.dim() != 4 or pixel_values.shape[1] != config.num_channels:
        raise ValueError(f"pixel_values must be [N, {config.num_channels}, H, W], "
                         f"got shape {tuple(pixel_values.shape)}")
    h, w = pixel_values.shape[-2:]
    p = config.patch_size
    if h % p or w % p or h == 0 or w == 0:
        raise ValueError(f"pixel_values height/width {h}x{w} must be positive multiples of "
                         f"patch_size {p}")

