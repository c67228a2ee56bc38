"""Model shape configs read from a checkpoint's config.json (frozen dataclasses).

`TextConfig.from_hf` reads a Nemotron-H text config; `VLConfig.from_hf` reads the
NemotronH_Nano_VL_V2 config that nests it under `llm_config` (or `text_config`).
Unknown keys are dropped; invalid values raise ValueError naming the field.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

# layers_block_type names (new HF form) -> pattern characters (legacy form)
BLOCK_TYPE_TO_CHAR = {
    "mamba": "M", "linear_attention": "M",
    "attention": "*", "full_attention": "*",
    "mlp": "-",
}
PATTERN_CHARS = frozenset("M*-")

# legacy Nemotron-H keys -> current names (transformers NemotronHConfig accepts both)
TEXT_ALIASES = {
    "mamba_n_groups": "n_groups",
    "mamba_d_conv": "conv_kernel",
    "mamba_expand": "expand",
    "mamba_dt_min": "time_step_min",
    "mamba_dt_max": "time_step_max",
    "mamba_dt_limit": "time_step_limit",
    "mamba_dt_init_floor": "time_step_floor",
    "mamba_conv_bias": "use_conv_bias",
    "mamba_chunk_size": "chunk_size",
    "mamba_d_state": "ssm_state_size",
    "use_bias": "mamba_proj_bias",
    # the remote-code NemotronHConfig of the original checkpoints
    "attention_head_dim": "head_dim",
}

# timm ViT names used by RADIO's official config -> (hidden, layers, heads, mlp hidden)
TIMM_VIT_DIMS = {
    "vit_tiny_patch16_224": (192, 12, 3, 768),
    "vit_small_patch16_224": (384, 12, 6, 1536),
    "vit_base_patch16_224": (768, 12, 12, 3072),
    "vit_large_patch16_224": (1024, 24, 16, 4096),
    "vit_huge_patch16_224": (1280, 32, 16, 5120),
}


def _fields(cls) -> set[str]:
    return {f.name for f in dataclasses.fields(cls)}


def _require(cond: bool, name: str, msg: str) -> None:
    if not cond:
        raise ValueError(f"invalid config field `{name}`: {msg}")


@dataclass(frozen=True)
class TextConfig:
    """Nemotron-H hybrid language model shape."""

    vocab_size: int = 131072
    hidden_size: int = 5120
    pattern: str = "M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M*-M-M-M-M-"
    num_attention_heads: int = 40
    num_key_value_heads: int = 8
    head_dim: int = 128
    intermediate_size: int = 20480
    mamba_num_heads: int = 128
    mamba_head_dim: int = 80
    ssm_state_size: int = 128
    n_groups: int = 8
    conv_kernel: int = 4
    chunk_size: int = 128
    use_conv_bias: bool = True
    mamba_proj_bias: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    mlp_hidden_act: str = "relu2"
    mamba_hidden_act: str = "silu"
    time_step_limit: tuple[float, float] = (0.0, math.inf)
    layer_norm_epsilon: float = 1e-5
    residual_in_fp32: bool = False
    tie_word_embeddings: bool = False
    max_position_embeddings: int = 131072
    bos_token_id: int | None = 1
    eos_token_id: int | tuple[int, ...] | None = 2
    pad_token_id: int | None = 0

    def __post_init__(self) -> None:
        self.validate()

    # derived sizes -------------------------------------------------------
    @property
    def num_layers(self) -> int:
        return len(self.pattern)

    @property
    def d_inner(self) -> int:
        return self.mamba_num_heads * self.mamba_head_dim

    @property
    def conv_dim(self) -> int:
        return self.d_inner + 2 * self.n_groups * self.ssm_state_size

    @property
    def in_proj_dim(self) -> int:
        # order: [z, xBC, dt]
        return self.d_inner + self.conv_dim + self.mamba_num_heads

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    def validate(self) -> None:
        bad = set(self.pattern) - PATTERN_CHARS
        _require(len(self.pattern) > 0, "hybrid_override_pattern", "empty layer pattern")
        _require(not bad, "hybrid_override_pattern",
                 f"unknown layer character(s) {sorted(bad)} (expected M, * or -)")
        for name in ("vocab_size", "hidden_size", "num_attention_heads", "num_key_value_heads",
                     "head_dim", "intermediate_size", "mamba_num_heads", "mamba_head_dim",
                     "ssm_state_size", "n_groups", "conv_kernel", "chunk_size"):
            v = getattr(self, name)
            _require(isinstance(v, int) and not isinstance(v, bool) and v > 0, name,
                     f"must be a positive integer, got {v!r}")
        _require(self.num_attention_heads % self.num_key_value_heads == 0, "num_key_value_heads",
                 f"{self.num_attention_heads} attention heads are not divisible by "
                 f"{self.num_key_value_heads} kv heads")
        _require(self.mamba_num_heads % self.n_groups == 0, "n_groups",
                 f"{self.mamba_num_heads} mamba heads are not divisible by {self.n_groups} groups")
        _require(self.mlp_hidden_act == "relu2", "mlp_hidden_act",
                 f"only relu2 is supported, got {self.mlp_hidden_act!r}")
        _require(self.mamba_hidden_act == "silu", "mamba_hidden_act",
                 f"only silu is supported, got {self.mamba_hidden_act!r}")
        _require(self.layer_norm_epsilon > 0, "layer_norm_epsilon", "must be > 0")
        lo, hi = self.time_step_limit
        _require(0.0 <= lo <= hi, "time_step_limit", f"expected 0 <= min <= max, got {self.time_step_limit}")

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> "TextConfig":
        """Build from a config.json dict (`model_type: nemotron_h`); unknown keys ignored."""
        cfg = dict(cfg)
        for old, new in TEXT_ALIASES.items():
            if old in cfg and new not in cfg:
                cfg[new] = cfg[old]
        kw: dict[str, Any] = {k: cfg[k] for k in _fields(cls) if k in cfg and k != "pattern"}
        kw["pattern"] = _pattern_from_hf(cfg)
        if "num_hidden_layers" in cfg and cfg["num_hidden_layers"] is not None \
                and "layers_block_type" not in cfg:
            _require(cfg["num_hidden_layers"] == len(kw["pattern"]), "num_hidden_layers",
                     f"{cfg['num_hidden_layers']} does not match the pattern length {len(kw['pattern'])}")
        if "mamba_num_heads" not in cfg and "expand" in cfg and "mamba_head_dim" in cfg:
            kw["mamba_num_heads"] = cfg["expand"] * cfg["hidden_size"] // cfg["mamba_head_dim"]
        if cfg.get("head_dim") is None:
            # transformers and the remote code both default to 128, not hidden_size // heads
            # (Nemotron-H 4B: 3072 / 32 = 96 against the checkpoint's 128)
            kw["head_dim"] = cls.head_dim
        if kw.get("num_key_value_heads") is None:
            kw["num_key_value_heads"] = kw.get("num_attention_heads", cls.num_attention_heads)
        if "time_step_limit" in kw:
            kw["time_step_limit"] = _time_step_limit(kw["time_step_limit"])
        if isinstance(kw.get("eos_token_id"), list):
            kw["eos_token_id"] = tuple(kw["eos_token_id"])
        return cls(**kw)


def _json_float(v: Any) -> float:
    # transformers writes non-finite floats as {"__float__": "Infinity"} in config.json
    if isinstance(v, dict) and "__float__" in v:
        v = v["__float__"]
    return float(v)


def _time_step_limit(v: Any) -> tuple[float, float]:
    if v is None:
        return (0.0, math.inf)
    try:
        lo, hi = (_json_float(x) for x in v)
    except (TypeError, ValueError):
        raise ValueError(f"invalid config field `time_step_limit`: expected two numbers, got {v!r}") from None
    return (lo, hi)


def _pattern_from_hf(cfg: dict[str, Any]) -> str:
    if cfg.get("hybrid_override_pattern"):
        return str(cfg["hybrid_override_pattern"])
    types = cfg.get("layers_block_type") or cfg.get("layer_types")
    if types:
        unknown = [t for t in types if t not in BLOCK_TYPE_TO_CHAR]
        _require(not unknown, "layers_block_type", f"unknown layer type(s) {unknown}")
        return "".join(BLOCK_TYPE_TO_CHAR[t] for t in types)
    raise ValueError("invalid config: neither `hybrid_override_pattern` nor `layers_block_type` given")


@dataclass(frozen=True)
class VisionConfig:
    """RADIO ViT shape (transformers RadioConfig names; official `args` form mapped in)."""

    hidden_size: int = 1280
    num_hidden_layers: int = 32
    num_attention_heads: int = 16
    intermediate_size: int = 5120
    patch_size: int = 16
    max_img_size: int = 2048
    # None = read from the checkpoint's cls_token.token rows
    num_cls_tokens: int | None = None
    num_registers: int | None = None
    layer_norm_eps: float = 1e-6
    hidden_act: str = "gelu"
    qkv_bias: bool = True
    # CPE interpolation of the stored position grid (SPEC Part C: training used False)
    cpe_align_corners: bool = False
    num_channels: int = 3

    def __post_init__(self) -> None:
        for name in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                     "intermediate_size", "patch_size", "max_img_size"):
            v = getattr(self, name)
            _require(isinstance(v, int) and v > 0, f"vision_config.{name}", f"must be a positive integer, got {v!r}")
        _require(self.hidden_size % self.num_attention_heads == 0, "vision_config.num_attention_heads",
                 f"hidden_size {self.hidden_size} not divisible by {self.num_attention_heads} heads")
        _require(self.max_img_size % self.patch_size == 0, "vision_config.max_img_size",
                 f"{self.max_img_size} is not a multiple of patch_size {self.patch_size}")
        _require(self.hidden_act in ("gelu", "gelu_pytorch_tanh", "gelu_new"), "vision_config.hidden_act",
                 f"unsupported activation {self.hidden_act!r}")
        for name in ("num_cls_tokens", "num_registers"):
            v = getattr(self, name)
            _require(v is None or (isinstance(v, int) and v >= 0), f"vision_config.{name}",
                     f"must be a non-negative integer or None, got {v!r}")
        _require(self.layer_norm_eps > 0, "vision_config.layer_norm_eps", "must be > 0")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def max_grid(self) -> int:
        return self.max_img_size // self.patch_size

    @property
    def num_prefix_tokens(self) -> int | None:
        if self.num_cls_tokens is None or self.num_registers is None:
            return None
        return self.num_cls_tokens + self.num_registers

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> "VisionConfig":
        cfg = dict(cfg)
        args = cfg.get("args") or {}
        kw: dict[str, Any] = {}
        if args:
            name = args.get("model", "vit_huge_patch16_224")
            if name not in TIMM_VIT_DIMS:
                raise ValueError(f"invalid config field `vision_config.args.model`: unknown ViT {name!r}")
            h, n_layers, heads, mlp = TIMM_VIT_DIMS[name]
            kw.update(hidden_size=h, num_hidden_layers=n_layers, num_attention_heads=heads,
                      intermediate_size=mlp, max_img_size=int(args.get("cpe_max_size", 2048)))
            kw["patch_size"] = int(cfg.get("patch_size", 16))
        for k in _fields(cls):
            if k in cfg and cfg[k] is not None:
                kw[k] = cfg[k]
        if "intermediate_size" not in cfg and "mlp_ratio" in cfg:
            kw["intermediate_size"] = int(kw.get("hidden_size", cls.hidden_size) * cfg["mlp_ratio"])
        return cls(**kw)


@dataclass(frozen=True)
class VLConfig:
    """NemotronH_Nano_VL_V2: RADIO + pixel-shuffle projector + Nemotron-H LM."""

    text: TextConfig = field(default_factory=TextConfig)
    vision: VisionConfig = field(default_factory=VisionConfig)
    force_image_size: int = 512
    patch_size: int = 16
    downsample_ratio: float = 0.5
    ps_version: str = "v2"
    projector_hidden_size: int = 20480
    vit_hidden_size: int = 1280
    norm_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    norm_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    use_thumbnail: bool = True
    max_num_tiles: int = 12
    video_pruning_rate: float = 0.0
    img_context_token_id: int | None = None
    img_context_token: str = "<image>"
    img_start_token: str = "<img>"
    img_end_token: str = "</img>"
    video_context_token: str = "<video>"

    def __post_init__(self) -> None:
        _require(self.ps_version == "v2", "ps_version", f"only v2 is supported, got {self.ps_version!r}")
        _require(self.downsample_ratio == 0.5, "downsample_ratio",
                 f"only 0.5 is supported, got {self.downsample_ratio}")
        _require(self.force_image_size % self.patch_size == 0, "force_image_size",
                 f"{self.force_image_size} is not a multiple of patch_size {self.patch_size}")
        grid = self.force_image_size // self.patch_size
        _require(grid % 2 == 0, "force_image_size", f"patch grid {grid} must be even for pixel shuffle")
        _require(self.vit_hidden_size == self.vision.hidden_size, "vit_hidden_size",
                 f"{self.vit_hidden_size} != vision hidden_size {self.vision.hidden_size}")
        _require(1 <= self.max_num_tiles <= 64, "max_num_tiles", f"must be in 1..64, got {self.max_num_tiles}")
        _require(0.0 <= self.video_pruning_rate < 1.0, "video_pruning_rate",
                 f"must be in [0, 1), got {self.video_pruning_rate}")
        _require(len(self.norm_mean) == 3 and len(self.norm_std) == 3 and min(self.norm_std) > 0,
                 "norm_std", "norm_mean/norm_std must be 3 values with std > 0")

    @property
    def grid_size(self) -> int:
        """Patches per side of one tile."""
        return self.force_image_size // self.patch_size

    @property
    def num_image_token(self) -> int:
        """LM tokens per tile after pixel shuffle (256 for the real model)."""
        return int(self.grid_size ** 2 * self.downsample_ratio ** 2)

    @classmethod
    def from_hf(cls, cfg: dict[str, Any]) -> "VLConfig":
        text_cfg = cfg.get("llm_config") or cfg.get("text_config")
        if text_cfg is None:
            raise ValueError("invalid config: VL config has neither `llm_config` nor `text_config`")
        for name, sub in (("llm_config / text_config", text_cfg), ("vision_config", cfg.get("vision_config") or {})):
            if not isinstance(sub, dict):
                raise ValueError(f"invalid config: {name} must be an object, got {type(sub).__name__}")
        kw: dict[str, Any] = {k: cfg[k] for k in _fields(cls) if k in cfg and k not in ("text", "vision")}
        if kw.get("img_context_token_id") is None and cfg.get("image_context_token_id") is not None:
            kw["img_context_token_id"] = cfg["image_context_token_id"]
        for k in ("norm_mean", "norm_std"):
            if k in kw:
                kw[k] = tuple(float(x) for x in kw[k])
        vision = VisionConfig.from_hf({"patch_size": cfg.get("patch_size", 16), **(cfg.get("vision_config") or {})})
        kw.setdefault("vit_hidden_size", vision.hidden_size)
        return cls(text=TextConfig.from_hf(text_cfg), vision=vision, **kw)


def is_vl_config(cfg: dict[str, Any]) -> bool:
    archs = cfg.get("architectures") or []
    return "llm_config" in cfg or "NemotronH_Nano_VL_V2" in archs or (
        "text_config" in cfg and "vision_config" in cfg)


def config_from_hf(cfg: dict[str, Any]) -> TextConfig | VLConfig:
    """The config object for a checkpoint's config.json: VLConfig or TextConfig."""
    if not isinstance(cfg, dict):
        raise ValueError(f"invalid config: config.json must hold an object, got {type(cfg).__name__}")
    return VLConfig.from_hf(cfg) if is_vl_config(cfg) else TextConfig.from_hf(cfg)
