"""Write an FP8 checkpoint in ModelOpt's layout from an unquantized one.

Every projection named in `input_amax` gets an e4m3 weight with a per-tensor `weight_scale`
(amax(|W|) / 448) and a static `input_scale` (the calibrated amax(|x|) / 448); every other tensor
is copied as stored. Shards keep their file names and contents, so a sharded checkpoint stays
sharded. The config gains ModelOpt's `quantization_config`, and `hf_quant_config.json` is written
beside it, so other engines that read ModelOpt exports (vLLM, TensorRT-LLM) see the same format.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path

import torch
from safetensors.torch import save_file

from nanovl.model.loader import INDEX_FILE, _shard_files, open_shard, read_config
from nanovl.model.quantized import HF_QUANT_FILE
from nanovl.ops.fp8_linear import FP8_MAX, quantize_fp8_ref


def quantize_weight_fp8(weight: torch.Tensor, per_channel: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(e4m3 weight, fp32 scale) with scale = amax(|W|) / 448, so the largest entry maps to 448: one
    0-dim scale, or with `per_channel` one per output row ([N])."""
    w = weight.detach()
    amax = w.abs().amax(dim=1) if per_channel else w.abs().amax()
    scale = (amax.float() / FP8_MAX).clamp_min(1e-12)
    return quantize_fp8_ref(weight, scale[:, None] if per_channel else scale), scale


def input_scale_of(amax: float) -> torch.Tensor:
    """The static input scale of a calibrated amax(|x|) (fp32, 0-dim)."""
    if not amax > 0:
        raise ValueError(f"calibrated input amax must be > 0, got {amax}")
    return torch.tensor(float(amax) / FP8_MAX, dtype=torch.float32)


def write_fp8_checkpoint(src: str | Path, dst: str | Path, input_amax: Mapping[str, float],
                         *, exclude: list[str] | None = None, per_channel_per_token: bool = False) -> Path:
    """Copy checkpoint folder `src` to `dst`, quantizing the projections named in `input_amax`.

    `per_channel_per_token` writes ModelOpt's FP8_PER_CHANNEL_PER_TOKEN instead: a weight scale per
    output channel and no input scale (inputs are scaled per token at run time), so the amax values
    go unused and no calibration is needed.

    Args:
        src: an unquantized checkpoint folder (config.json, safetensors, tokenizer files).
        dst: the new folder (created; must not hold a checkpoint already).
        input_amax: checkpoint prefix of a projection (its weight key without `.weight`) -> the
            largest |x| it saw during calibration.
        exclude: ModelOpt wildcards of what stays unquantized, recorded in the config for other
            engines (nanovl reads the tensors themselves).
    Returns:
        dst.
    """
    src, dst = Path(src), Path(dst)
    config = read_config(src)
    if "quantization_config" in config or (src / HF_QUANT_FILE).exists():
        raise ValueError(f"{src} is already quantized")
    if (dst / "config.json").exists():
        raise ValueError(f"{dst} already holds a checkpoint; choose a new folder")
    dst.mkdir(parents=True, exist_ok=True)
    shards = _shard_files(src)
    pending = set(input_amax)
    weight_map: dict[str, str] = {}
    total = 0
    for shard in shards:
        out: dict[str, torch.Tensor] = {}
        with open_shard(shard) as f:
            for key in f.keys():
                t = f.get_tensor(key)
                prefix = key.removesuffix(".weight")
                if key.endswith(".weight") and prefix in input_amax:
                    if t.dim() != 2 or not t.is_floating_point():
                        raise ValueError(f"{key}: only 2-D float projection weights can be quantized")
                    out[key], out[prefix + ".weight_scale"] = quantize_weight_fp8(t, per_channel_per_token)
                    if not per_channel_per_token:
                        out[prefix + ".input_scale"] = input_scale_of(input_amax[prefix])
                    pending.discard(prefix)
                else:
                    out[key] = t
        save_file(out, str(dst / shard.name), metadata={"format": "pt"})
        (dst / shard.name).chmod(shard.stat().st_mode & 0o777)  # safetensors writes 0600; keep the source's
        weight_map.update({k: shard.name for k in out})
        total += sum(t.numel() * t.element_size() for t in out.values())
    if pending:
        raise ValueError(f"no weight in {src} for {sorted(pending)[:4]}")
    if (src / INDEX_FILE).is_file():
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (dst / INDEX_FILE).write_text(json.dumps(index, indent=2))
    for f in src.iterdir():  # tokenizer, chat template, generation config, README ...
        if f.is_file() and f.name not in {"config.json", INDEX_FILE} and not f.name.endswith(".safetensors"):
            shutil.copy2(f, dst / f.name)
    exclude = list(exclude or [])
    algo = "FP8_PER_CHANNEL_PER_TOKEN" if per_channel_per_token else "FP8"
    config["quantization_config"] = {"quant_method": "modelopt", "quant_algo": algo, "ignore": exclude}
    (dst / "config.json").write_text(json.dumps(config, indent=2))
    hf_quant = {"producer": {"name": "nanovl"},
                "quantization": {"quant_algo": algo, "kv_cache_quant_algo": None, "exclude_modules": exclude}}
    (dst / HF_QUANT_FILE).write_text(json.dumps(hf_quant, indent=2))
    return dst
