"""Writers of random checkpoints in the official Hugging Face layout (for tests and demos).

The tensor list is written out here from the checkpoint layout of SPEC Part H, not read from
our modules, so loading one of these checkpoints also checks the modules' key names.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from nanovl.config import TextConfig, VLConfig
from nanovl.model.presets import preset_hf_config, preset_text_hf_config

# files of tokenizer_dir that belong to its own checkpoint, not to the tokenizer
_NOT_COPIED = {"config.json", "model.safetensors.index.json"}


def text_checkpoint_shapes(cfg: TextConfig, prefix: str = "") -> dict[str, tuple[int, ...]]:
    """Official Nemotron-H tensor names -> shapes (`prefix` is "language_model." inside a VL checkpoint)."""
    d, shapes = cfg.hidden_size, {}
    shapes[f"{prefix}backbone.embeddings.weight"] = (cfg.vocab_size, d)
    for i, kind in enumerate(cfg.pattern):
        L = f"{prefix}backbone.layers.{i}."
        shapes[L + "norm.weight"] = (d,)
        if kind == "M":
            h = cfg.mamba_num_heads
            shapes.update({L + "mixer.in_proj.weight": (cfg.in_proj_dim, d),
                           L + "mixer.conv1d.weight": (cfg.conv_dim, 1, cfg.conv_kernel),
                           L + "mixer.dt_bias": (h,), L + "mixer.A_log": (h,), L + "mixer.D": (h,),
                           L + "mixer.norm.weight": (cfg.d_inner,),
                           L + "mixer.out_proj.weight": (d, cfg.d_inner)})
            if cfg.use_conv_bias:
                shapes[L + "mixer.conv1d.bias"] = (cfg.conv_dim,)
            if cfg.mamba_proj_bias:
                shapes.update({L + "mixer.in_proj.bias": (cfg.in_proj_dim,), L + "mixer.out_proj.bias": (d,)})
        elif kind == "*":
            q, kv = cfg.num_attention_heads * cfg.head_dim, cfg.num_key_value_heads * cfg.head_dim
            for name, out_dim, in_dim in (("q_proj", q, d), ("k_proj", kv, d), ("v_proj", kv, d), ("o_proj", d, q)):
                shapes[L + f"mixer.{name}.weight"] = (out_dim, in_dim)
                if cfg.attention_bias:
                    shapes[L + f"mixer.{name}.bias"] = (out_dim,)
        else:
            for name, out_dim, in_dim in (("up_proj", cfg.intermediate_size, d),
                                          ("down_proj", d, cfg.intermediate_size)):
                shapes[L + f"mixer.{name}.weight"] = (out_dim, in_dim)
                if cfg.mlp_bias:
                    shapes[L + f"mixer.{name}.bias"] = (out_dim,)
    shapes[f"{prefix}backbone.norm_f.weight"] = (d,)
    if not cfg.tie_word_embeddings:
        shapes[f"{prefix}lm_head.weight"] = (cfg.vocab_size, d)
    return shapes


def vl_checkpoint_shapes(cfg: VLConfig) -> dict[str, tuple[int, ...]]:
    """Official NemotronH_Nano_VL_V2 tensor names -> shapes (RADIO buffers included)."""
    v = cfg.vision
    if v.num_prefix_tokens is None:
        raise ValueError("vision_config needs num_cls_tokens and num_registers to write a checkpoint")
    d, m = v.hidden_size, "vision_model.radio_model.model."
    shapes = {"vision_model.radio_model.input_conditioner.norm_mean": (3, 1, 1),
              "vision_model.radio_model.input_conditioner.norm_std": (3, 1, 1),
              "vision_model.radio_model.summary_idxs": (v.num_cls_tokens,),
              m + "patch_generator.embedder.weight": (d, v.num_channels * v.patch_size ** 2),
              m + "patch_generator.pos_embed": (1, v.max_grid ** 2, d),
              m + "patch_generator.cls_token.token": (v.num_prefix_tokens, d)}
    for j in range(v.num_hidden_layers):
        b = f"{m}blocks.{j}."
        for name, out_dim, in_dim in (("attn.qkv", 3 * d, d), ("attn.proj", d, d),
                                      ("mlp.fc1", v.intermediate_size, d), ("mlp.fc2", d, v.intermediate_size)):
            shapes[b + name + ".weight"] = (out_dim, in_dim)
            shapes[b + name + ".bias"] = (out_dim,)
        for name in ("norm1", "norm2"):
            shapes[b + name + ".weight"] = shapes[b + name + ".bias"] = (d,)
    in_dim = cfg.vit_hidden_size * round(1 / cfg.downsample_ratio) ** 2
    shapes.update({"mlp1.0.weight": (in_dim,), "mlp1.1.weight": (cfg.projector_hidden_size, in_dim),
                   "mlp1.3.weight": (cfg.text.hidden_size, cfg.projector_hidden_size)})
    shapes.update(text_checkpoint_shapes(cfg.text, prefix="language_model."))
    return shapes


# output projections of residual branches: scaled down by sqrt(2 * depth) so the stream stays O(1)
_RESIDUAL_OUT = ("out_proj.weight", "o_proj.weight", "down_proj.weight", "attn.proj.weight", "mlp.fc2.weight")


def random_tensor(key: str, shape: tuple[int, ...], gen: torch.Generator, *, depth: int,
                  time_step_range: tuple[float, float] = (1e-3, 0.1)) -> torch.Tensor:
    """One random weight chosen by its name so that activations stay well scaled."""
    n = shape[0]
    if key.endswith("A_log"):
        return torch.log(torch.arange(1, n + 1, dtype=torch.float32))
    if key.endswith("mixer.D"):
        return torch.ones(shape)
    if key.endswith("dt_bias"):
        lo, hi = (math.log(t) for t in time_step_range)
        dt = torch.exp(torch.rand(shape, generator=gen) * (hi - lo) + lo)
        return dt + torch.log(-torch.expm1(-dt))  # inverse softplus
    if key.endswith("norm_mean"):
        return torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(3, 1, 1)
    if key.endswith("norm_std"):
        return torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(3, 1, 1)
    if key.endswith("summary_idxs"):
        return torch.arange(n, dtype=torch.int64)
    if key.endswith(("norm.weight", "norm1.weight", "norm2.weight", "norm_f.weight", "mlp1.0.weight")):
        # near one, not exactly, so that swapped norm weights change the output
        return 1.0 + 0.05 * torch.randn(shape, generator=gen)
    if key.endswith("bias"):
        return 0.02 * torch.randn(shape, generator=gen)
    if key.endswith(("embeddings.weight", "cls_token.token")):
        return torch.randn(shape, generator=gen)
    if key.endswith("pos_embed"):
        return 0.5 * torch.randn(shape, generator=gen)
    fan_in = math.prod(shape[1:])
    std = 1.0 / math.sqrt(fan_in)
    if key.endswith(_RESIDUAL_OUT):
        std /= math.sqrt(2 * depth)
    return std * torch.randn(shape, generator=gen)


def _random_state(shapes: dict[str, tuple[int, ...]], seed: int, dtype: torch.dtype,
                  depth_of: dict[str, int], time_step_range: tuple[float, float]) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    out = {}
    for key, shape in shapes.items():
        depth = depth_of["vision" if key.startswith("vision_model.") else "text"]
        t = random_tensor(key, shape, gen, depth=depth, time_step_range=time_step_range)
        out[key] = t if t.dtype == torch.int64 else t.to(dtype)
    return out


def _save_weights(folder: Path, state: dict[str, torch.Tensor], num_shards: int) -> None:
    if num_shards < 1:
        raise ValueError(f"num_shards must be >= 1, got {num_shards}")
    if num_shards == 1:
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    keys = list(state)
    if num_shards > len(keys):
        raise ValueError(f"num_shards {num_shards} exceeds the {len(keys)} tensors")
    sizes = {k: state[k].numel() * state[k].element_size() for k in keys}
    total = sum(sizes.values())
    # contiguous groups of roughly equal bytes (like HF's max_shard_size), none empty
    groups: list[list[str]] = [[]]
    written = 0
    for pos, k in enumerate(keys):
        shards_left = num_shards - len(groups)
        full = written >= total * len(groups) / num_shards
        if groups[-1] and shards_left > 0 and (full or len(keys) - pos <= shards_left):
            groups.append([])
        groups[-1].append(k)
        written += sizes[k]
    weight_map = {}
    for i, group in enumerate(groups):
        name = f"model-{i + 1:05d}-of-{num_shards:05d}.safetensors"
        save_file({k: state[k] for k in group}, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in group})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _copy_tokenizer(tokenizer_dir: Path | None, folder: Path) -> None:
    if tokenizer_dir is None:
        return
    for f in Path(tokenizer_dir).iterdir():
        if f.is_file() and f.name not in _NOT_COPIED and not f.name.endswith(".safetensors"):
            shutil.copy2(f, folder / f.name)


def _tokenizer_info(tokenizer_dir: Path | None) -> tuple[int | None, int | None]:
    """(vocab size incl. added tokens, id of `<image>`) of tokenizer_dir/tokenizer.json, if any."""
    path = Path(tokenizer_dir) / "tokenizer.json" if tokenizer_dir is not None else None
    if path is None or not path.exists():
        return None, None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(path))
    return tok.get_vocab_size(with_added_tokens=True), tok.token_to_id("<image>")


def _write_common(folder, cfg_dict: dict[str, Any], state: dict[str, torch.Tensor], num_shards: int,
                  tokenizer_dir, gen_cfg: dict[str, Any]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _save_weights(folder, state, num_shards)
    (folder / "config.json").write_text(json.dumps(cfg_dict, indent=2))
    (folder / "generation_config.json").write_text(json.dumps(gen_cfg, indent=2))
    _copy_tokenizer(tokenizer_dir, folder)
    return folder


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _generation_config(llm: dict[str, Any]) -> dict[str, Any]:
    return {k: llm[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in llm}


def write_random_vl_checkpoint(folder, *, preset: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                               num_shards: int = 1, tokenizer_dir=None,
                               overrides: dict[str, Any] | None = None) -> Path:
    """Write a random NemotronH_Nano_VL_V2 checkpoint (config.json + safetensors) into `folder`.

    Args:
        preset: a name from nanovl.model.presets.PRESETS.
        seed: the weights are a pure function of (preset, overrides, seed).
        dtype: dtype of the floating-point tensors.
        num_shards: > 1 writes model-0000i-of-0000n.safetensors + model.safetensors.index.json.
        tokenizer_dir: its tokenizer files are copied in; its `<image>` id becomes
            img_context_token_id unless `overrides` sets one.
        overrides: deep-merged into the config.json dict, e.g. {"llm_config": {"vocab_size": 512}}.
    Returns:
        the folder.
    """
    overrides = dict(overrides or {})
    tok_size, image_id = _tokenizer_info(tokenizer_dir)
    if image_id is not None and "img_context_token_id" not in overrides:
        overrides["img_context_token_id"] = image_id
    cfg_dict = preset_hf_config(preset, overrides)
    cfg_dict["torch_dtype"] = cfg_dict["llm_config"]["torch_dtype"] = _dtype_name(dtype)
    cfg = VLConfig.from_hf(cfg_dict)
    vocab = cfg.text.vocab_size
    if tok_size is not None and tok_size > vocab:
        raise ValueError(f"llm_config.vocab_size {vocab} is smaller than the tokenizer's {tok_size} tokens")
    if cfg.img_context_token_id is None or not 0 <= cfg.img_context_token_id < vocab:
        raise ValueError(f"img_context_token_id {cfg.img_context_token_id} is outside the vocabulary ({vocab})")
    depth = {"text": cfg.text.num_layers, "vision": cfg.vision.num_hidden_layers}
    ts = (cfg_dict["llm_config"].get("time_step_min", 1e-3), cfg_dict["llm_config"].get("time_step_max", 0.1))
    state = _random_state(vl_checkpoint_shapes(cfg), seed, dtype, depth, ts)
    return _write_common(folder, cfg_dict, state, num_shards, tokenizer_dir,
                         _generation_config(cfg_dict["llm_config"]))


def write_random_text_checkpoint(folder, *, preset: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float32,
                                 num_shards: int = 1, tokenizer_dir=None,
                                 overrides: dict[str, Any] | None = None) -> Path:
    """Write a random text-only nemotron_h checkpoint (keys `backbone.*`, `lm_head.weight`).

    Args: as write_random_vl_checkpoint; `overrides` merge into the nemotron_h config.json dict.
    Returns:
        the folder.
    """
    cfg_dict = preset_text_hf_config(preset, overrides)
    cfg_dict["torch_dtype"] = _dtype_name(dtype)
    cfg = TextConfig.from_hf(cfg_dict)
    tok_size, _ = _tokenizer_info(tokenizer_dir)
    if tok_size is not None and tok_size > cfg.vocab_size:
        raise ValueError(f"vocab_size {cfg.vocab_size} is smaller than the tokenizer's {tok_size} tokens")
    ts = (cfg_dict.get("time_step_min", 1e-3), cfg_dict.get("time_step_max", 0.1))
    state = _random_state(text_checkpoint_shapes(cfg), seed, dtype, {"text": cfg.num_layers}, ts)
    return _write_common(folder, cfg_dict, state, num_shards, tokenizer_dir, _generation_config(cfg_dict))
