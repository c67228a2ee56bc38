"""VisionConfig / VLConfig parsing of the two vision_config forms (official `args`, RadioConfig names).

Run: python -m pytest tests/model/test_vision_config.py
"""
from __future__ import annotations

import pytest

from nanovl.config import VisionConfig, VLConfig
from nanovl.model.presets import preset_hf_config


def test_official_args_form_maps_timm_name_and_leaves_prefix_count_to_checkpoint():
    cfg = preset_hf_config("nano-12b-v2-vl")
    cfg["vision_config"] = {"args": {"model": "vit_huge_patch16_224", "cpe_max_size": 2048,
                                     "register_multiple": 8, "teachers": [{}, {}, {}, {}]}}
    vl = VLConfig.from_hf(cfg)
    v = vl.vision
    assert (v.hidden_size, v.num_hidden_layers, v.num_attention_heads, v.intermediate_size) == (1280, 32, 16, 5120)
    assert v.max_grid == 128 and v.head_dim == 80 and v.patch_size == 16
    assert v.num_prefix_tokens is None
    assert vl.num_image_token == 256


def test_radio_config_names_with_mlp_ratio():
    v = VisionConfig.from_hf({"hidden_size": 96, "num_hidden_layers": 3, "num_attention_heads": 6,
                              "mlp_ratio": 2.5, "patch_size": 8, "max_img_size": 64,
                              "num_cls_tokens": 2, "num_registers": 6, "layer_norm_eps": 1e-5})
    assert v.intermediate_size == 240 and v.num_prefix_tokens == 8 and v.max_grid == 8


@pytest.mark.parametrize("field, value", [("num_attention_heads", 5), ("max_img_size", 250),
                                          ("num_registers", -1), ("hidden_act", "relu"),
                                          ("layer_norm_eps", 0.0)])
def test_invalid_vision_fields_name_the_field(field, value):
    kw = {"hidden_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "intermediate_size": 128,
          "patch_size": 16, "max_img_size": 256, field: value}
    with pytest.raises(ValueError, match=f"vision_config.{field}"):
        VisionConfig(**kw)


def test_vit_hidden_size_must_match_vision():
    cfg = preset_hf_config("tiny", {"vit_hidden_size": 32})
    with pytest.raises(ValueError, match="vit_hidden_size"):
        VLConfig.from_hf(cfg)
