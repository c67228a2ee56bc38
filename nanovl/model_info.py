"""A checkpoint's summary without loading its weights: parameters, layer pattern, context,
vision shape, frame sampling defaults, and what given images or videos cost in prompt tokens.

Used by `nanovl info`; shapes come from the safetensors headers, costs from the processor.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

LAYER_KINDS = {"M": "Mamba2", "*": "attention", "-": "MLP"}


def _count(n: int) -> str:
    for unit, scale in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _param_groups(headers: dict[str, tuple[tuple[int, ...], str]]) -> dict[str, int]:
    groups = {"language": 0, "vision": 0, "projector": 0}
    for key, (shape, _) in headers.items():
        n = math.prod(shape)
        if key.startswith("vision_model."):
            groups["vision"] += n
        elif key.startswith("mlp1."):
            groups["projector"] += n
        else:
            groups["language"] += n
    return groups


def _quantization_line(folder: Path, raw_config: dict,
                       headers: dict[str, tuple[tuple[int, ...], str]]) -> str | None:
    """What a quantized checkpoint stores in FP8 (None for an unquantized one); ValueError names a
    quantization nanovl cannot run."""
    from nanovl.model.quantized import WEIGHT_SCALE, read_quantization

    quant = read_quantization(folder, raw_config)
    if quant is None:
        return None
    n = sum(key.endswith(WEIGHT_SCALE) for key in headers)
    fp8_bytes = sum(math.prod(shape) for key, (shape, dtype) in headers.items() if dtype == "F8_E4M3")
    return (f"quantization: {quant['quant_algo']} (ModelOpt layout), {n} projections in e4m3 "
            f"({fp8_bytes / 1e6:.1f} MB), the rest as stored; KV cache in the model dtype")


def describe_model(model: str | Path | None, *, images: Sequence[str] = (), videos: Sequence[str] = (),
                   video_fps: float = 2.0, video_max_frames: int = 128) -> list[str]:
    """Lines describing `model` (None: the bundled tiny model) and the cost of each image/video.

    Raises:
        ValueError for a missing or unreadable checkpoint; MediaError for unreadable media.
    """
    from nanovl.config import VLConfig, config_from_hf
    from nanovl.llm import BUNDLED_MODEL
    from nanovl.model.loader import read_checkpoint_headers, read_config, resolve_checkpoint

    folder = resolve_checkpoint(model if model is not None else BUNDLED_MODEL)
    raw_config = read_config(folder)
    cfg = config_from_hf(raw_config)
    text = cfg.text if isinstance(cfg, VLConfig) else cfg
    headers = read_checkpoint_headers(folder)
    groups = _param_groups(headers)
    kinds = ", ".join(f"{LAYER_KINDS[k]} x{text.pattern.count(k)}" for k in LAYER_KINDS if k in text.pattern)
    lines = [f"model: {folder}",
             f"parameters: {_count(sum(groups.values()))} "
             f"({', '.join(f'{k} {_count(v)}' for k, v in groups.items() if v)})",
             f"layers: {text.num_layers}, pattern: {text.pattern} ({kinds})",
             f"hidden size: {text.hidden_size}, vocab: {text.vocab_size}",
             f"context: {text.max_position_embeddings} tokens"]
    quantized = _quantization_line(folder, raw_config, headers)
    if quantized:
        lines.append(quantized)
    if not isinstance(cfg, VLConfig):
        return lines + ["vision: none (text-only checkpoint)"]
    v = cfg.vision
    lines += [f"vision: RADIO ViT {v.num_hidden_layers} layers x {v.hidden_size} dims, {v.num_attention_heads} heads, "
              f"patch {v.patch_size}; tile {cfg.force_image_size}px -> {cfg.num_image_token} tokens/tile, "
              f"up to {cfg.max_num_tiles} tiles" + (" + thumbnail" if cfg.use_thumbnail else ""),
              f"video: {video_fps:g} fps, up to {video_max_frames} frames, "
              f"EVS pruning rate {cfg.video_pruning_rate:g}"]
    if images or videos:
        lines += _media_costs(folder, cfg, images, videos, video_fps, video_max_frames)
    return lines


def _media_costs(folder: Path, cfg, images: Sequence[str], videos: Sequence[str], fps: float,
                 max_frames: int) -> list[str]:
    from nanovl.processor import Processor
    from nanovl.tokenizer import Tokenizer

    proc = Processor(Tokenizer.from_dir(folder), cfg, video_fps=fps, video_max_frames=max_frames)
    lines = []
    for kind, paths in (("image", images), ("video", videos)):
        for path in paths:
            part = {"type": f"{kind}_url", f"{kind}_url": {"url": str(path)}}
            # a PDF given as an image expands into one item per page
            items = proc.process_chat([{"role": "user", "content": [part]}]).mm_input.items
            n = sum(item.pixel_values.shape[0] for item in items)
            what = f"{n} tiles" if kind == "image" else f"{n} frames"
            if len(items) > 1:
                what = f"{len(items)} pages, {what}"
            lines.append(f"{kind} {path}: {sum(i.length for i in items)} tokens "
                         f"({what}, {sum(i.num_embeds for i in items)} image tokens)")
    return lines
