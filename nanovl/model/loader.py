"""Checkpoint loading: a local folder (config.json + model.safetensors or a sharded index) or a hub id.

Modules are built with their parameters on the meta device and filled shard by shard, so a
12B checkpoint is never materialized twice and no random init runs for weights about to be loaded.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from nanovl.config import TextConfig, VLConfig, config_from_hf

INDEX_FILE = "model.safetensors.index.json"
SINGLE_FILE = "model.safetensors"
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
LM_PREFIX = "language_model."
# the hub fetch takes the small files first (config, tokenizer, template, shard index), then only
# the safetensors the index names: a repo that also ships a consolidated copy is not pulled twice,
# and weights of other formats (.bin, .gguf) never are
HUB_META_PATTERNS = ["*.json", "*.txt", "*.model", "*.jinja", "*.py"]


def lm_key_map(key: str) -> str | None:
    """Checkpoint key -> LM parameter name: strips a VL checkpoint's `language_model.` prefix and
    skips the vision tower and projector (so the LM alone loads from a VL checkpoint)."""
    if key.startswith(LM_PREFIX):
        return key[len(LM_PREFIX):]
    if key.startswith(("vision_model.", "mlp1.")):
        return None
    return key


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A local checkpoint folder for `path`: the folder itself, or a hub snapshot for an `org/name` id."""
    if not isinstance(path, (str, os.PathLike)):
        raise ValueError(f"a checkpoint is a folder path or a hub id, not {type(path).__name__}")
    p = Path(path).expanduser()
    if p.is_dir():
        return p
    if p.exists():
        raise ValueError(f"checkpoint path {str(path)!r} is a file; expected a folder with config.json")
    if not HUB_ID.match(str(path)):
        raise ValueError(f"checkpoint folder {str(path)!r} does not exist (and is not a hub id like org/name)")
    return _snapshot_download(str(path))


def _snapshot_download(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")
    try:
        # a short metadata timeout so an unreachable hub fails in seconds instead of hanging
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_META_PATTERNS, local_files_only=offline,
                                        etag_timeout=5))
        # what _weight_files will read: the index's shards, else the single file
        weights = _indexed_shards(folder / INDEX_FILE) or [SINGLE_FILE]
        return Path(snapshot_download(repo_id, allow_patterns=weights, local_files_only=offline, etag_timeout=5))
    except Exception as e:  # the hub raises many types (offline, 404, gated, network); all mean "not loadable"
        mode = ("offline mode (HF_HUB_OFFLINE=1) and not in the local cache" if offline
                else "hub unreachable or repo missing")
        raise ValueError(f"cannot fetch checkpoint {repo_id!r}: {mode}: {type(e).__name__}: {e}") from e


def _indexed_shards(index: Path) -> list[str]:
    """The shard file names a shard index maps tensors to ([] without a readable index)."""
    if not index.is_file():
        return []
    weight_map = read_json_object(index).get("weight_map")
    return sorted(set(weight_map.values())) if isinstance(weight_map, dict) else []


def read_json_object(path: Path) -> dict:
    """A JSON file holding one object; ValueError naming the file otherwise."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object, not {type(value).__name__}")
    return value


def read_config(folder: Path) -> dict:
    """The parsed config.json of a checkpoint folder."""
    cfg_file = Path(folder) / "config.json"
    if not cfg_file.is_file():
        raise ValueError(f"checkpoint folder {str(folder)!r} has no config.json")
    return read_json_object(cfg_file)


@contextlib.contextmanager
def open_shard(shard: Path) -> Iterator:
    """`safe_open` of one shard; a damaged file (an interrupted download: truncated, or not
    safetensors at all) becomes a ValueError that names it, whether at its header or its data."""
    try:
        with safe_open(str(shard), framework="pt") as f:
            yield f
    except SafetensorError as err:
        raise ValueError(f"{shard}: not a readable safetensors file (truncated or corrupt?): {err}") from None


def _shard_files(folder: Path) -> list[Path]:
    folder = Path(folder)
    if (folder / INDEX_FILE).is_file():
        weight_map = read_json_object(folder / INDEX_FILE).get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError(f"{INDEX_FILE} in {str(folder)!r} has no weight_map")
        files = sorted(set(weight_map.values()))
        missing = [n for n in files if not (folder / n).is_file()]
        if missing:
            raise ValueError(f"{INDEX_FILE} names missing shard file(s) {missing} in {str(folder)!r}")
        return [folder / n for n in files]
    if (folder / SINGLE_FILE).is_file():
        return [folder / SINGLE_FILE]
    raise ValueError(f"checkpoint folder {str(folder)!r} has neither {SINGLE_FILE} nor {INDEX_FILE}")


def read_checkpoint_shapes(folder: str | os.PathLike) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape from the safetensors headers (no tensor data is read)."""
    return {key: shape for key, (shape, _) in read_checkpoint_headers(folder).items()}


def read_checkpoint_headers(folder: str | os.PathLike) -> dict[str, tuple[tuple[int, ...], str]]:
    """Every tensor's (shape, safetensors dtype name such as "BF16" or "F8_E4M3") from the headers."""
    headers: dict[str, tuple[tuple[int, ...], str]] = {}
    for shard in _shard_files(Path(folder)):
        with open_shard(shard) as f:
            for key in f.keys():
                sl = f.get_slice(key)
                headers[key] = (tuple(sl.get_shape()), sl.get_dtype())
    return headers


@contextlib.contextmanager
def init_on_meta() -> Iterator[None]:
    """Modules built inside get their parameters on the meta device (buffers stay real).

    It patches `nn.Module.register_parameter` and the `nn.init` fills for the duration, so build one
    model at a time. A fill of a meta tensor is skipped: its values are never read, and `normal_` on
    meta goes through torch's decomposition refs, whose first use imports torch._dynamo (~2-3 s of
    every CLI call's start on a 2-core CPU, for an embedding the checkpoint overwrites anyway).
    """
    original = nn.Module.register_parameter

    def register(module: nn.Module, name: str, param: nn.Parameter | None) -> None:
        original(module, name, param)
        if param is not None and not param.is_meta:
            module._parameters[name] = nn.Parameter(param.to("meta"), requires_grad=param.requires_grad)

    def skipping_meta(fill):
        def fill_unless_meta(tensor, *args, **kwargs):
            return tensor if tensor.is_meta else fill(tensor, *args, **kwargs)
        return fill_unless_meta

    fills = {name: getattr(nn.init, name) for name in _INIT_FILLS}
    nn.Module.register_parameter = register
    for name, fill in fills.items():
        setattr(nn.init, name, skipping_meta(fill))
    try:
        yield
    finally:
        nn.Module.register_parameter = original
        for name, fill in fills.items():
            setattr(nn.init, name, fill)


# the nn.init fills torch's modules call from reset_parameters
_INIT_FILLS = ("normal_", "uniform_", "trunc_normal_", "constant_", "ones_", "zeros_", "kaiming_uniform_",
               "kaiming_normal_", "xavier_uniform_", "xavier_normal_", "orthogonal_")


def _targets(module: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, list[str]]]:
    """Checkpoint-visible tensors by name, and the aliases of each (tied weights share one object)."""
    expected: dict[str, torch.Tensor] = {}
    aliases: dict[str, list[str]] = {}
    by_id: dict[int, str] = {}
    named = list(module.named_parameters(remove_duplicate=False))
    persistent = set(module.state_dict(keep_vars=True).keys())
    named += [(n, b) for n, b in module.named_buffers(remove_duplicate=False) if n in persistent]
    for name, t in named:
        first = by_id.setdefault(id(t), name)
        if first == name:
            expected[name] = t
            aliases[name] = [name]
        else:
            aliases[first].append(name)
    return expected, aliases


def _assign(module: nn.Module, names: list[str], value: torch.Tensor) -> None:
    # one Parameter object for all aliases, so tied weights stay tied
    param = None
    for name in names:
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        if attr in owner._parameters:
            param = param if param is not None else nn.Parameter(value, requires_grad=False)
            owner._parameters[attr] = param
        else:
            owner._buffers[attr] = value


def _check_keys(module: nn.Module, folder: Path, key_map: Callable[[str], str | None] | None) -> dict[str, str]:
    """Map checkpoint keys to module names; raise ValueError on unexpected/missing/mis-shaped tensors."""
    expected, aliases = _targets(module)
    # a tied checkpoint may also store the second name of a shared tensor (lm_head of tied embeddings)
    tied = {a for names in aliases.values() for a in names[1:]}
    shapes = read_checkpoint_shapes(folder)
    mapping: dict[str, str] = {}
    unexpected, misshaped, seen = [], [], set()
    for key, shape in shapes.items():
        name = key_map(key) if key_map is not None else key
        if name is None or name in tied:
            continue
        if name not in expected:
            unexpected.append(key)
            continue
        seen.add(name)
        if tuple(expected[name].shape) != shape:
            misshaped.append(f"{key}: checkpoint {list(shape)} vs model {list(expected[name].shape)}")
        else:
            mapping[key] = name
    missing = sorted(set(expected) - seen)
    problems = []
    for label, items in (("mis-shaped", misshaped), ("unexpected", unexpected), ("missing", missing)):
        if items:
            shown = ", ".join(items[:8]) + (f", ... ({len(items)} in all)" if len(items) > 8 else "")
            problems.append(f"{label} tensor(s): {shown}")
    if problems:
        raise ValueError(f"checkpoint {str(folder)!r} does not fit the model: " + "; ".join(problems))
    return mapping


@torch.no_grad()
def load_weights(module: nn.Module, folder: str | os.PathLike, *, dtype: torch.dtype = torch.float32,
                 device: str | torch.device = "cpu",
                 key_map: Callable[[str], str | None] | None = None) -> nn.Module:
    """Fill `module` (usually built under `init_on_meta()`) from the folder's safetensors, shard by shard.

    NOTE: every floating tensor takes `dtype` (but those a module fixes: `_fixed_dtypes`), A_log/D/dt_bias included: the mixer upcasts them to
    fp32 where it uses them, and transformers also stores them in the model dtype, so keeping them
    in fp32 would buy no parity.

    Args:
        module: the model; its `state_dict()` names are the targets.
        folder: a checkpoint folder (model.safetensors or model.safetensors.index.json + shards).
        dtype: floating tensors are cast to this dtype (integer tensors keep theirs).
        device: where the tensors go.
        key_map: checkpoint key -> module name, or None to skip the key; identity when None.
    Returns:
        the module, all its parameters on `device` with requires_grad=False.
    Raises:
        ValueError naming every missing, unexpected or mis-shaped tensor (checked before any load).
    """
    folder = Path(folder)
    mapping = _check_keys(module, folder, key_map)
    expected, aliases = _targets(module)
    fixed = _fixed_dtypes(module, expected)
    report = _PROGRESS.get()
    shards = _shard_files(folder)
    total, done = (sum(s.stat().st_size for s in shards), 0) if report else (0, 0)
    for shard in shards:
        with open_shard(shard) as f:
            for key in f.keys():
                if key not in mapping:
                    continue
                t = f.get_tensor(key)
                if report:
                    done += t.numel() * t.element_size()
                    report(min(done, total), total)
                name = mapping[key]
                want = fixed.get(name, dtype if t.is_floating_point() else t.dtype)
                t = t.to(device=device, dtype=want)
                _assign(module, aliases[name], t)
    if report:
        report(total, total)  # file sizes include headers and skipped keys: end the bar at 100%
    # buffers the checkpoint does not hold (non-persistent ones) follow the weights
    return module.to(device)


def _fixed_dtypes(module: nn.Module, expected: dict[str, torch.Tensor]) -> dict[str, torch.dtype]:
    """Tensors whose module fixes their dtype (its `fixed_dtype_tensors`: an FP8 layer's e4m3 weight
    and fp32 scales) -> that dtype, whatever dtype the rest of the model loads in."""
    fixed = {}
    for prefix, sub in module.named_modules():
        for attr in getattr(sub, "fixed_dtype_tensors", ()):
            name = f"{prefix}.{attr}" if prefix else attr
            if name in expected:
                fixed[name] = expected[name].dtype
    return fixed


# A loading-progress callback (bytes loaded, bytes in all) for whoever shows a bar (the CLI);
# context-scoped so library callers and concurrent loads are unaffected.
_PROGRESS: contextvars.ContextVar[Callable[[int, int], None] | None] = contextvars.ContextVar(
    "nanovl_load_progress", default=None)


@contextlib.contextmanager
def loading_progress(callback: Callable[[int, int], None]) -> Iterator[None]:
    """Call `callback(done_bytes, total_bytes)` after each tensor that loads inside this block."""
    token = _PROGRESS.set(callback)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


def build_lm(config: TextConfig) -> nn.Module:
    """An NemotronHForCausalLM with meta-device parameters (fill it with `load_weights`)."""
    from nanovl.model.hybrid_lm import NemotronHForCausalLM

    with init_on_meta():
        return NemotronHForCausalLM(config)


def build_on_meta(folder: Path, config: TextConfig | VLConfig, *, text_only: bool = False,
                  shapes: dict[str, tuple[int, ...]] | None = None) -> tuple[nn.Module, Callable[[str], str | None]]:
    """The model `config` describes, its parameters on the meta device, and the checkpoint key -> module
    name map that fills it from `folder` (`shapes`: the checkpoint's, when already read).
    `text_only`: a VL config's language model alone."""
    if isinstance(config, VLConfig) and not text_only:
        from nanovl.model.vlm import build_vl_model, vl_key_map

        with init_on_meta():
            model = build_vl_model(config, shapes if shapes is not None else read_checkpoint_shapes(folder))
        return model, vl_key_map
    return build_lm(config.text if isinstance(config, VLConfig) else config), lm_key_map


def load_model(path: str | os.PathLike, *, dtype: torch.dtype | str = torch.float32,
               device: str | torch.device = "cpu", text_only: bool = False) -> nn.Module:
    """Load a checkpoint folder or hub id into an eval-mode model.

    Args:
        path: a folder with config.json and safetensors, or a hub id `org/name`.
        dtype, device: where and in which floating dtype the weights live (a torch dtype, or its
            name: "bfloat16", "float16", "float32").
        text_only: for a VL checkpoint, load only its language model (keys under `language_model.`).
    Returns:
        NemotronHForCausalLM for a text config; the VL model of `nanovl.model.vlm` for a VL config.
    """
    from nanovl.model import quantized

    dtype = _float_dtype(dtype)
    folder = resolve_checkpoint(path)
    raw_config = read_config(folder)
    config = config_from_hf(raw_config)
    quantization = quantized.read_quantization(folder, raw_config)
    headers = read_checkpoint_headers(folder) if quantization else None
    shapes = {key: shape for key, (shape, _) in headers.items()} if headers else None
    model, key_map = build_on_meta(folder, config, text_only=text_only, shapes=shapes)
    if quantization:
        key_map = quantized.skip_kv_scales(key_map)
        quantized.quantize_modules(model, headers, key_map,
                                   per_token=quantization["quant_algo"] == "FP8_PER_CHANNEL_PER_TOKEN")
    load_weights(model, folder, dtype=dtype, device=device, key_map=key_map)
    fuse_projections(model)
    return model.eval()


def _float_dtype(dtype: torch.dtype | str) -> torch.dtype:
    named = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(named, torch.dtype) or not named.is_floating_point:
        raise ValueError(f"dtype must be a floating torch dtype or its name (bfloat16, float16, float32), "
                         f"got {dtype!r}")
    return named


def fuse_projections(model: nn.Module) -> nn.Module:
    """On a GPU, fuse what reads one input into one weight for inference (each attention layer's
    q/k/v; `Attention.fuse_qkv`). Parameters and state-dict keys stay as they were. A CPU model is
    left alone: one GEMM for three gains nothing there, and its results stay bit-equal to the
    unfused module's (the fused GEMM's blocking rounds differently)."""
    from nanovl.model.attention import Attention

    for module in model.modules():
        # FP8 projections stay apart: each has its own scales
        if (isinstance(module, Attention) and module.q_proj.weight.is_cuda
                and all(isinstance(p, nn.Linear) for p in (module.q_proj, module.k_proj, module.v_proj))):
            module.fuse_qkv()
    return model
