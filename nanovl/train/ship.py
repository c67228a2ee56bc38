"""Write a trained NemotronVL in the official Hugging Face layout, and read it back for training.

The folder gets config.json (NemotronH_Nano_VL_V2 form, from the preset), model.safetensors (or
shards with an index when `max_shard_bytes` asks for them), generation_config.json and the
tokenizer files, so `nanovl.model.loader.load_model` and the engine load it like any checkpoint.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from nanovl.model.presets import CLIP_MEAN, CLIP_STD, preset_hf_config

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja")


def hf_config(preset: str, image_token_id: int, dtype: torch.dtype) -> dict:
    """The config.json dict of a preset with the tokenizer's `<image>` id and the stored dtype."""
    cfg = preset_hf_config(preset, {"img_context_token_id": image_token_id})
    name = str(dtype).removeprefix("torch.")
    cfg["torch_dtype"] = cfg["llm_config"]["torch_dtype"] = name
    return cfg


def checkpoint_tensors(model, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's state dict in `dtype` plus RADIO's buffers that official checkpoints carry."""
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    n_cls = model.config.vision.num_cls_tokens or 1
    state["vision_model.radio_model.input_conditioner.norm_mean"] = torch.tensor(CLIP_MEAN).view(3, 1, 1).to(dtype)
    state["vision_model.radio_model.input_conditioner.norm_std"] = torch.tensor(CLIP_STD).view(3, 1, 1).to(dtype)
    state["vision_model.radio_model.summary_idxs"] = torch.arange(n_cls, dtype=torch.int64)
    return state


def export_checkpoint(model, folder: str | Path, *, preset: str, tokenizer_dir: str | Path,
                      dtype: torch.dtype = torch.bfloat16, max_shard_bytes: int | None = None) -> Path:
    """Write `model` + tokenizer into `folder` in the official layout; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok_cfg = json.loads((Path(tokenizer_dir) / "tokenizer.json").read_text())
    image_id = next(t["id"] for t in tok_cfg["added_tokens"] if t["content"] == "<image>")
    cfg = hf_config(preset, image_id, dtype)
    state = checkpoint_tensors(model, dtype)
    _save(state, folder, max_shard_bytes)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2) + "\n")
    llm = cfg["llm_config"]
    gen = {k: llm[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")}
    (folder / "generation_config.json").write_text(json.dumps(gen, indent=2) + "\n")
    for name in TOKENIZER_FILES:
        shutil.copy2(Path(tokenizer_dir) / name, folder / name)
    return folder


def _save(state: dict[str, torch.Tensor], folder: Path, max_shard_bytes: int | None) -> None:
    total = sum(t.numel() * t.element_size() for t in state.values())
    if max_shard_bytes is None or total <= max_shard_bytes:
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    shards, cur, size = [], {}, 0
    for k, t in state.items():
        n = t.numel() * t.element_size()
        if cur and size + n > max_shard_bytes:
            shards.append(cur)
            cur, size = {}, 0
        cur[k], size = t, size + n
    shards.append(cur)
    weight_map = {}
    for i, shard in enumerate(shards):
        name = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in shard})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def read_tensors(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint folder (single file or shards)."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    if index.exists():
        out = {}
        for name in sorted(set(json.loads(index.read_text())["weight_map"].values())):
            out.update(load_file(str(folder / name)))
        return out
    return load_file(str(folder / "model.safetensors"))


def load_into(model, folder: str | Path) -> None:
    """Copy a checkpoint's weights into a training model (fp32 master weights stay fp32)."""
    state = read_tensors(folder)
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    if missing:
        raise ValueError(f"checkpoint {folder} lacks {len(missing)} tensors, e.g. {missing[:3]}")
    with torch.no_grad():
        for k, v in own.items():
            v.copy_(state[k].to(v.dtype))
