"""Quantized checkpoints: ModelOpt's FP8 export (NVIDIA's `...-FP8` releases of these models).

Such a checkpoint is the official layout plus a quantization config (config.json's
`quantization_config` and/or `hf_quant_config.json`) and, for every quantized projection, an e4m3
`weight` with a per-tensor `weight_scale` and usually a calibrated `input_scale` beside it.
Which projections are quantized is read from the tensors themselves (a `weight_scale` beside the
weight), so the config's exclusion list needs no interpreting. KV-cache scales (`k_scale`,
`v_scale`) are skipped: nanovl keeps its KV cache in the model dtype.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from nanovl.model.fp8_linear import Fp8Linear

HF_QUANT_FILE = "hf_quant_config.json"
# per-tensor scales (the kernels' format), and per-channel weight / per-token input scales
SUPPORTED_ALGOS = ("FP8", "FP8_PER_CHANNEL_PER_TOKEN")
KV_SCALE_SUFFIXES = (".k_scale", ".v_scale")
WEIGHT_SCALE = ".weight_scale"


def read_quantization(folder: Path, raw_config: dict) -> dict | None:
    """{"quant_algo", "kv_cache_quant_algo"} of a quantized checkpoint, None for an unquantized one.

    Raises ValueError for a quantization nanovl does not run (another method, or ModelOpt's NVFP4
    and block-scaled FP8 variants), naming it."""
    from nanovl.model.loader import read_json_object

    hf_file = Path(folder) / HF_QUANT_FILE
    found = raw_config.get("quantization_config")
    if hf_file.is_file():
        found = read_json_object(hf_file)
        found.setdefault("quant_method", "modelopt")  # this file is ModelOpt's own
    if found is None:
        return None
    if not isinstance(found, dict):
        raise ValueError(f"quantization_config must be a JSON object, not {type(found).__name__}")
    method = str(found.get("quant_method", "")).lower()
    if not method.startswith("modelopt"):
        raise ValueError(f"checkpoint quantized with {method or 'an unnamed method'!r}: nanovl loads "
                         f"unquantized checkpoints and ModelOpt FP8 ones")
    inner = found.get("quantization", found)
    algo = str(inner.get("quant_algo", "")).upper() if isinstance(inner, dict) else ""
    if algo not in SUPPORTED_ALGOS:
        raise ValueError(f"ModelOpt quant_algo {algo or None!r} is not supported: nanovl runs "
                         f"{', '.join(SUPPORTED_ALGOS)} (e4m3 weights and inputs)")
    kv = inner.get("kv_cache_quant_algo")
    return {"quant_algo": algo, "kv_cache_quant_algo": kv}


def skip_kv_scales(key_map: Callable[[str], str | None] | None) -> Callable[[str], str | None]:
    """`key_map` that also skips the KV-cache scales (the cache stays in the model dtype)."""
    def mapped(key: str) -> str | None:
        if key.endswith(KV_SCALE_SUFFIXES):
            return None
        return key_map(key) if key_map is not None else key
    return mapped


def quantize_modules(model: nn.Module, headers: dict[str, tuple[tuple[int, ...], str]],
                     key_map: Callable[[str], str | None], *, per_token: bool = False) -> int:
    """Swap every linear layer whose checkpoint weight has a `weight_scale` for an `Fp8Linear` of the
    checkpoint's scale shapes (on the meta device, like the model it joins). Returns how many.

    `headers`: checkpoint key -> (shape, safetensors dtype name), `loader.read_checkpoint_headers`.
    `per_token`: a layer without `input_scale` scales its input per token (FP8_PER_CHANNEL_PER_TOKEN),
    not per tensor.

    Raises ValueError for a scale beside something that is not a linear layer, a scaled weight not
    stored in e4m3, and an e4m3 weight without a scale (its values would load unscaled)."""
    from nanovl.model.loader import init_on_meta

    shapes = {key: shape for key, (shape, _) in headers.items()}
    dtypes = {key: dtype for key, (_, dtype) in headers.items()}
    names = {}
    for key in shapes:
        name = key_map(key)
        if name is not None:
            names[name] = key
    swapped = 0
    for name, key in names.items():
        if not name.endswith(WEIGHT_SCALE):
            continue
        prefix = name[:-len(WEIGHT_SCALE)]
        try:
            module = model.get_submodule(prefix)
        except AttributeError:
            raise ValueError(f"checkpoint tensor {key} scales a module the model does not have") from None
        weight_key = names.get(prefix + ".weight")
        if not isinstance(module, nn.Linear) or weight_key is None:
            raise ValueError(f"checkpoint tensor {key}: nanovl quantizes linear layers only, not "
                             f"{type(module).__name__} {prefix!r}")
        if dtypes.get(weight_key) != "F8_E4M3":
            raise ValueError(f"{weight_key} has a weight_scale but is stored as {dtypes.get(weight_key)}, not F8_E4M3")
        input_key = names.get(prefix + ".input_scale")
        with init_on_meta():
            fp8 = Fp8Linear(module.in_features, module.out_features, module.bias is not None,
                            weight_scale_shape=shapes[key],
                            input_scale_shape=shapes[input_key] if input_key is not None else None,
                            per_token=per_token)
        model.set_submodule(prefix, fp8)
        swapped += 1
    scaled = {names[n[:-len(WEIGHT_SCALE)] + ".weight"] for n in names if n.endswith(WEIGHT_SCALE)}
    unscaled = sorted(k for k, d in dtypes.items() if d.startswith("F8") and k not in scaled and key_map(k))
    if unscaled:
        raise ValueError(f"checkpoint stores {unscaled[:4]} in FP8 without a weight_scale beside it")
    return swapped
