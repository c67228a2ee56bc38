"""RADIO ViT vs transformers' RadioModel on tiny random configs; CPE resize vs a hand-written bilinear.

Run: python -m pytest tests/model/test_vision_radio.py
"""
from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from nanovl.config import VisionConfig
from nanovl.model.vision import RadioViT

transformers_radio = pytest.importorskip("transformers.models.radio.modeling_radio")


def _hf_model(layerscale: float = 1.0, act: str = "gelu"):
    from transformers.models.radio.configuration_radio import RadioConfig

    cfg = RadioConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, mlp_ratio=4.0,
                      patch_size=16, max_img_size=256, num_cls_tokens=1, num_registers=3,
                      layerscale_value=layerscale, hidden_act=act, summary_idxs=[0])
    cfg._attn_implementation = "eager"
    model = transformers_radio.RadioModel(cfg).eval()
    model.make_preprocessor_external()
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lambda1" in name and layerscale == 1.0:
                continue
            # larger than the 0.02 init so every part of the block moves the output
            p.copy_(torch.randn(p.shape, generator=gen) * (0.5 if "norm" in name else 0.15))
            if name.endswith("norm1.weight") or name.endswith("norm2.weight"):
                p.add_(1.0)
    return cfg, model


def _ours_from_hf(hf_cfg, hf_model, *, use_layer_scale=False, align_corners=False) -> RadioViT:
    """Copy transformers' weights into our module, renaming keys and fusing q/k/v."""
    cfg = VisionConfig.from_hf({**hf_cfg.to_dict(), "cpe_align_corners": align_corners})
    ours = RadioViT(cfg, use_layer_scale=use_layer_scale).eval()
    src = hf_model.state_dict()
    dst = {
        "patch_generator.embedder.weight": src["embeddings.patch_projection.weight"],
        "patch_generator.pos_embed": src["embeddings.position_embedding"],
        "patch_generator.cls_token.token": src["embeddings.cls_register_token"],
    }
    for j in range(hf_cfg.num_hidden_layers):
        a, b = f"encoder.layer.{j}.", f"blocks.{j}."
        for part in ("weight", "bias"):
            dst[b + f"attn.qkv.{part}"] = torch.cat([src[a + f"attention.{n}_proj.{part}"] for n in "qkv"])
            dst[b + f"attn.proj.{part}"] = src[a + f"attention.o_proj.{part}"]
            for n in ("norm1", "norm2", "mlp.fc1", "mlp.fc2"):
                dst[b + f"{n}.{part}"] = src[a + f"{n}.{part}"]
        if use_layer_scale:
            dst[b + "ls1.gamma"] = src[a + "layer_scale1.lambda1"]
            dst[b + "ls2.gamma"] = src[a + "layer_scale2.lambda1"]
    ours.load_state_dict(dst, strict=True)
    return ours


def _rel_close(name, ref, out, rel=1e-5):
    scale = ref.abs().max().item()
    assert_close(name, ref, out, atol=rel * scale, rtol=0.0)


@pytest.mark.parametrize("hw", [(64, 64), (48, 80), (80, 48), (256, 256), (32, 288)],
                         ids=["sq4", "3x5", "5x3", "maxgrid", "2x18-beyond-max"])
def test_radio_vit_matches_transformers(hw):
    hf_cfg, hf = _hf_model()
    ours = _ours_from_hf(hf_cfg, hf)
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        ref = hf(pixel_values=x).features
        out = ours(x)
    assert out.shape == (2, (hw[0] // 16) * (hw[1] // 16), 64)
    _rel_close(f"features {hw}", ref, out)


def test_radio_vit_layer_scale_and_tanh_gelu_match_transformers():
    hf_cfg, hf = _hf_model(layerscale=0.5, act="gelu_pytorch_tanh")
    ours = _ours_from_hf(hf_cfg, hf, use_layer_scale=True)
    x = torch.randn(1, 3, 48, 64)
    with torch.no_grad():
        _rel_close("features layerscale", hf(pixel_values=x).features, ours(x))


def test_radio_vit_align_corners_option_changes_output():
    # transformers resizes with align_corners=False (our default); the True variant must differ
    hf_cfg, hf = _hf_model()
    ours = _ours_from_hf(hf_cfg, hf, align_corners=True)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        diff = (hf(pixel_values=x).features - ours(x)).abs().max().item()
    assert diff > 1e-3


def _bilinear_ref(grid: torch.Tensor, out: int, align_corners: bool) -> torch.Tensor:
    """grid [g, g, D] -> [out, out, D], one output position at a time."""
    g = grid.shape[0]

    def src(i):
        if align_corners:
            return i * (g - 1) / (out - 1) if out > 1 else 0.0
        return max((i + 0.5) * g / out - 0.5, 0.0)

    res = torch.empty(out, out, grid.shape[-1], dtype=torch.float64)
    for i in range(out):
        for j in range(out):
            y, x = src(i), src(j)
            y0, x0 = int(y), int(x)
            y1, x1 = min(y0 + 1, g - 1), min(x0 + 1, g - 1)
            dy, dx = y - y0, x - x0
            res[i, j] = ((1 - dy) * (1 - dx) * grid[y0, x0] + (1 - dy) * dx * grid[y0, x1]
                         + dy * (1 - dx) * grid[y1, x0] + dy * dx * grid[y1, x1])
    return res


@pytest.mark.parametrize("align_corners", [False, True], ids=["half-pixel", "corners"])
@pytest.mark.parametrize("rows_cols", [(3, 5), (6, 2), (7, 7)], ids=["3x5", "6x2", "7x7"])
def test_cpe_position_embeddings_crop_of_square_resize(align_corners, rows_cols):
    cfg = VisionConfig(hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16,
                       patch_size=4, max_img_size=40, num_cls_tokens=1, num_registers=0,
                       cpe_align_corners=align_corners)
    vit = RadioViT(cfg)
    with torch.no_grad():
        vit.patch_generator.pos_embed.normal_()
    rows, cols = rows_cols
    got = vit.patch_generator.position_embeddings(rows, cols, torch.float32)
    grid = vit.patch_generator.pos_embed.detach().double().reshape(10, 10, 8)
    want = _bilinear_ref(grid, max(rows, cols), align_corners)[:rows, :cols].reshape(1, rows * cols, 8)
    assert_close("pos_embed", want, got, atol=1e-5, rtol=1e-5)


def test_radio_vit_rejects_bad_inputs_and_prefix_mismatch():
    cfg = VisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       patch_size=8, max_img_size=32, num_cls_tokens=2, num_registers=2)
    vit = RadioViT(cfg)
    with pytest.raises(ValueError, match="pixel_values"):
        vit(torch.randn(1, 3, 20, 16))
    with pytest.raises(ValueError, match="pixel_values"):
        vit(torch.randn(3, 16, 16))
    with pytest.raises(ValueError, match="cls_token.token"):
        RadioViT(cfg, num_prefix_tokens=8)
    with pytest.raises(ValueError, match="num_cls_tokens"):
        RadioViT(VisionConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                              intermediate_size=32, patch_size=8, max_img_size=32))
    # prefix tokens are attended to but dropped from the output
    assert vit(torch.randn(2, 3, 16, 24)).shape == (2, 6, 16)
