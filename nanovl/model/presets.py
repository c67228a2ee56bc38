"""Named model shapes in config.json form: the real Nano-12B-v2-VL and a CPU-sized "tiny" one.

`preset_hf_config(name)` gives the NemotronH_Nano_VL_V2 config.json dict, `preset_text_hf_config(name)`
the text-only nemotron_h one, `preset_config(name)` the parsed VLConfig.
"""
from __future__ import annotations

import copy
from typing import Any

from nanovl.config import TextConfig, VLConfig

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]

NANO_12B_V2_VL = {
    "llm_config": {
        # NOTE: unconfirmed (SPEC Part J.1): the 131072 base vocab plus <image>/<img>/</img>/<video>
        # rounded up to a multiple of 128; a real checkpoint's own config.json wins
        "vocab_size": 131200,
        "hidden_size": 5120,
        "hybrid_override_pattern": "M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M-",
        "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
        "intermediate_size": 20480,
        "mamba_num_heads": 128, "mamba_head_dim": 80, "ssm_state_size": 128, "n_groups": 8,
        "conv_kernel": 4, "chunk_size": 128,
        "max_position_embeddings": 131072,
        "bos_token_id": 1, "eos_token_id": 12, "pad_token_id": 0,
    },
    "vision_config": {
        "hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16, "mlp_ratio": 4.0,
        "patch_size": 16, "max_img_size": 2048,
        # C-RADIOv2-H: 4 per-teacher cls tokens + 4 registers (SPEC Part C; checked against the checkpoint)
        "num_cls_tokens": 4, "num_registers": 4,
    },
    "force_image_size": 512,
    "projector_hidden_size": 20480,
    "max_num_tiles": 12,
    "img_context_token_id": 131072,
    "video_pruning_rate": 0.7,
}

TINY = {
    "llm_config": {
        "vocab_size": 400,
        "hidden_size": 64,
        # two Mamba2, two attention and one MLP block kinds, attention not first
        "hybrid_override_pattern": "M*M-M*",
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
        "intermediate_size": 128,
        "mamba_num_heads": 4, "mamba_head_dim": 16, "ssm_state_size": 16, "n_groups": 2,
        "conv_kernel": 4, "chunk_size": 16,
        "max_position_embeddings": 8192,
        "bos_token_id": 1, "eos_token_id": 12, "pad_token_id": 0,
    },
    "vision_config": {
        "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "mlp_ratio": 4.0,
        "patch_size": 16, "max_img_size": 256,
        "num_cls_tokens": 1, "num_registers": 3,
    },
    # 128 px tiles: an 8x8 patch grid -> 16 tokens per tile (a 4x4 raster after pixel shuffle),
    # enough spatial structure for EVS and tiny-model training while staying cheap on CPU
    "force_image_size": 128,
    "projector_hidden_size": 128,
    "max_num_tiles": 12,
    # the VL extra tokens sit after the base vocabulary as in the real tokenizer; a tokenizer
    # passed to the checkpoint writer replaces this with its own `<image>` id
    "img_context_token_id": 396,
    "video_pruning_rate": 0.0,
}

# The shipped trained tiny model (nanovl/assets/tiny): small enough for a 2-core CPU and a
# ~20-minute GPU run, wide enough to read 20 px text. 128 px tiles -> 16 tokens per tile.
TINY_TRAINED = {
    "llm_config": {
        "vocab_size": 1024,
        "hidden_size": 256,
        # 4 Mamba2, 2 attention, 2 MLP blocks; attention never first
        "hybrid_override_pattern": "M*M-M*M-",
        "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
        "intermediate_size": 1024,
        "mamba_num_heads": 8, "mamba_head_dim": 64, "ssm_state_size": 32, "n_groups": 2,
        # 64-token chunks keep the reference scan's Python loop short on ~500-token prompts
        "conv_kernel": 4, "chunk_size": 64,
        "max_position_embeddings": 8192,
        "bos_token_id": 1, "eos_token_id": 12, "pad_token_id": 0,
    },
    "vision_config": {
        "hidden_size": 256, "num_hidden_layers": 6, "num_attention_heads": 4, "mlp_ratio": 4.0,
        "patch_size": 16, "max_img_size": 256,
        "num_cls_tokens": 1, "num_registers": 3,
    },
    "force_image_size": 128,
    "projector_hidden_size": 512,
    "max_num_tiles": 12,
    # replaced by the trained tokenizer's own `<image>` id when the checkpoint is written
    "img_context_token_id": 1018,
    "video_pruning_rate": 0.0,
}

PRESETS: dict[str, dict[str, Any]] = {"nano-12b-v2-vl": NANO_12B_V2_VL, "tiny": TINY, "tiny-trained": TINY_TRAINED}

_LLM_COMMON = {
    "model_type": "nemotron_h",
    "architectures": ["NemotronHForCausalLM"],
    "mamba_hidden_act": "silu", "mlp_hidden_act": "relu2",
    "use_conv_bias": True, "use_bias": False, "attention_bias": False, "mlp_bias": False,
    "layer_norm_epsilon": 1e-5, "residual_in_fp32": False, "tie_word_embeddings": False,
    "time_step_min": 0.001, "time_step_max": 0.1, "time_step_floor": 1e-4,
}
_VISION_COMMON = {"model_type": "radio", "layer_norm_eps": 1e-6, "hidden_act": "gelu",
                  "qkv_bias": True, "num_channels": 3}
_VL_COMMON = {
    "architectures": ["NemotronH_Nano_VL_V2"],
    "model_type": "NemotronH_Nano_VL_V2",
    "patch_size": 16, "downsample_ratio": 0.5, "ps_version": "v2", "image_tag_type": "internvl",
    "norm_mean": CLIP_MEAN, "norm_std": CLIP_STD, "use_thumbnail": True,
    "img_context_token": "<image>", "img_start_token": "<img>", "img_end_token": "</img>",
    "video_context_token": "<video>",
}


def deep_merge(base: dict[str, Any], overrides: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of `base` with `overrides` merged in; nested dicts merge key by key."""
    out = copy.deepcopy(base)
    for k, v in (overrides or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _get(name: str) -> dict[str, Any]:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name]


def _finish_llm(llm: dict[str, Any], explicit: dict[str, Any]) -> dict[str, Any]:
    # derived fields follow the (possibly overridden) pattern and sizes unless set explicitly
    if "num_hidden_layers" not in explicit:
        llm["num_hidden_layers"] = len(llm["hybrid_override_pattern"])
    if "expand" not in explicit:
        llm["expand"] = max(1, llm["mamba_num_heads"] * llm["mamba_head_dim"] // llm["hidden_size"])
    return llm


def preset_text_hf_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The text-only nemotron_h config.json dict of a preset; `overrides` merge into it."""
    llm = deep_merge({**_LLM_COMMON, **_get(name)["llm_config"]}, overrides)
    return _finish_llm(llm, overrides or {})


def preset_hf_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The NemotronH_Nano_VL_V2 config.json dict of a preset (llm_config in nemotron_h form,
    vision_config in transformers RadioConfig names); `overrides` are deep-merged into it,
    e.g. {"llm_config": {"vocab_size": 512}, "img_context_token_id": 500}."""
    p = _get(name)
    cfg = deep_merge({**_VL_COMMON, **{k: v for k, v in p.items() if not k.endswith("_config")}}, None)
    cfg["llm_config"] = {**_LLM_COMMON, **p["llm_config"]}
    cfg["vision_config"] = {**_VISION_COMMON, **p["vision_config"]}
    cfg = deep_merge(cfg, overrides)
    _finish_llm(cfg["llm_config"], (overrides or {}).get("llm_config", {}))
    cfg["vision_config"]["patch_size"] = cfg["patch_size"]
    if "vit_hidden_size" not in (overrides or {}):
        cfg["vit_hidden_size"] = cfg["vision_config"]["hidden_size"]
    return cfg


def preset_config(name: str, overrides: dict[str, Any] | None = None) -> VLConfig:
    """The parsed VLConfig of a preset."""
    return VLConfig.from_hf(preset_hf_config(name, overrides))


def preset_text_config(name: str, overrides: dict[str, Any] | None = None) -> TextConfig:
    """The parsed TextConfig of a preset's language model."""
    return TextConfig.from_hf(preset_text_hf_config(name, overrides))
