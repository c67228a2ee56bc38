"""NemotronVL: RADIO ViT -> pixel shuffle + mlp1 -> Nemotron-H LM (NemotronH_Nano_VL_V2).

Attribute names give `state_dict()` keys equal to the official checkpoint keys
(`vision_model.radio_model.model.*`, `mlp1.*`, `language_model.*`); `build_vl_model` and
`vl_key_map` are what `model/loader.py` calls for a VL config.json.
"""
from __future__ import annotations

import torch
from torch import nn

from nanovl.config import VLConfig
from nanovl.inputs.evs import retention_mask
from nanovl.model.hybrid_lm import NemotronHForCausalLM
from nanovl.model.projector import build_mlp1, shuffle_and_project
from nanovl.model.vision import RadioVisionModel

# patches the ViT encodes in one call: 128 of the real model's 512 px tiles (1024 patches each), as
# vLLM does. Only peak memory depends on it, and memory grows with patches, not tiles, so small tiles
# go in larger groups: the tiny model's 64-patch tiles come 2048 at a time, one ViT call for a whole
# training batch (~750 tiles) instead of six, a sixth of the vision kernel launches
PATCHES_PER_MICRO_BATCH = 128 * 1024
VISION_PREFIX = "vision_model.radio_model.model."
CLS_TOKEN_KEY = VISION_PREFIX + "patch_generator.cls_token.token"
LAYER_SCALE_KEY = VISION_PREFIX + "blocks.0.ls1.gamma"
# checkpoint entries the model does not use: RADIO's own input normalization (done by the
# processor) and the teacher-summary index buffer
_SKIPPED_PREFIXES = ("vision_model.radio_model.input_conditioner.",)
_SKIPPED_KEYS = frozenset({"vision_model.radio_model.summary_idxs"})


class NemotronVL(nn.Module):
    """The vision-language model.

    Args:
        config: the VL shape (text, vision, projector, tiling fields).
        num_prefix_tokens: rows of the ViT's cls/register token tensor (None: from the config).
        use_layer_scale: build ViT layer-scale parameters (only if the checkpoint has them).
    """

    def __init__(self, config: VLConfig, *, num_prefix_tokens: int | None = None,
                 use_layer_scale: bool = False):
        super().__init__()
        self.config = config
        self.vision_model = RadioVisionModel(config.vision, num_prefix_tokens=num_prefix_tokens,
                                             use_layer_scale=use_layer_scale)
        scale = round(1 / config.downsample_ratio)
        self.mlp1 = build_mlp1(config.vit_hidden_size * scale * scale, config.projector_hidden_size,
                               config.text.hidden_size)
        self.language_model = NemotronHForCausalLM(config.text)

    @property
    def img_context_token_id(self) -> int | None:
        return self.config.img_context_token_id

    def new_state(self, *args, **kwargs):
        """The LM's inference state; see NemotronHForCausalLM.new_state."""
        return self.language_model.new_state(*args, **kwargs)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Image tiles -> LM-space image tokens.

        Args:
            pixel_values: [N, 3, S, S] normalized tiles (S = force_image_size; any H, W that are
                multiples of 2 * patch_size work, giving (H/2p)*(W/2p) tokens per tile).
        Returns:
            [N, num_image_token, D_text] in the LM's dtype, tiles in input order, tokens in raster order.
        """
        if pixel_values.dim() != 4:
            raise ValueError(f"pixel_values must be [N, 3, H, W], got shape {tuple(pixel_values.shape)}")
        p = self.config.vision.patch_size
        rows, cols = pixel_values.shape[-2] // p, pixel_values.shape[-1] // p
        dtype = self.mlp1[0].weight.dtype  # the norm: a quantized projection would read fp8
        out = []
        step = max(1, PATCHES_PER_MICRO_BATCH // (rows * cols))
        for start in range(0, pixel_values.shape[0], step):
            feats = self.vision_model(pixel_values[start:start + step])
            # the reference casts ViT features to bf16 here; following the model dtype keeps
            # bf16 models identical to it and fp32 models exact
            out.append(shuffle_and_project(feats.to(dtype), rows, cols, self.mlp1))
        if not out:
            n_tok = (rows // 2) * (cols // 2)
            return pixel_values.new_zeros(0, n_tok, self.config.text.hidden_size, dtype=dtype)
        return torch.cat(out)

    def encode_video(self, pixel_values: torch.Tensor, pruning_rate: float) -> tuple[torch.Tensor, list[int]]:
        """Video frames -> kept image tokens after Efficient Video Sampling (SPEC Part F).

        Args:
            pixel_values: [F, 3, S, S] normalized frames (one tile each).
            pruning_rate: q in [0, 1); 0 keeps every token.
        Returns:
            kept_embeds: [K, D_text], frame-major and raster order preserved.
            counts: tokens kept per frame (len F, sums to K).
        """
        if not 0.0 <= pruning_rate < 1.0:
            raise ValueError(f"pruning_rate must be in [0, 1), got {pruning_rate}")
        embeds = self.encode_images(pixel_values)  # [F, T, D]
        n_frames, n_tok, dim = embeds.shape
        if pruning_rate == 0.0 or n_frames == 0:
            return embeds.reshape(-1, dim), [n_tok] * n_frames
        mask = retention_mask(embeds, pruning_rate)  # [F*T] bool
        counts = mask.reshape(n_frames, n_tok).sum(1).tolist()
        return embeds.reshape(-1, dim)[mask], counts

    def embed_inputs(self, input_ids: torch.Tensor, image_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Token embeddings with `<image>` positions replaced by image tokens.

        Args:
            input_ids: [B, T].
            image_embeds: [M, D_text], one row per `<image>` position in row-major (b, t) order;
                None embeds `<image>` ids as ordinary tokens (as a text-only forward would).
        Returns:
            inputs_embeds: [B, T, D_text].
        """
        embeds = self.language_model.embed(input_ids)
        if image_embeds is None:
            return embeds
        if self.img_context_token_id is None:
            raise ValueError("image_embeds given but the config has no img_context_token_id")
        if image_embeds.dim() != 2 or image_embeds.shape[-1] != embeds.shape[-1]:
            raise ValueError(f"image_embeds must be [M, {embeds.shape[-1]}], got {tuple(image_embeds.shape)}")
        is_image = input_ids == self.img_context_token_id
        n_slots = int(is_image.sum())
        if n_slots != image_embeds.shape[0]:
            raise ValueError(f"input_ids hold {n_slots} <image> tokens (id {self.img_context_token_id}) "
                             f"but image_embeds has {image_embeds.shape[0]} rows")
        embeds = embeds.clone()
        embeds[is_image] = image_embeds.to(embeds.dtype)
        return embeds

    def forward(self, input_ids: torch.Tensor, pixel_values: torch.Tensor | None = None, *,
                state=None, image_embeds: torch.Tensor | None = None,
                logits_to_keep: int = 0) -> torch.Tensor:
        """Logits for a prompt with images.

        Args:
            input_ids: [B, T] with one `<image>` id per image token.
            pixel_values: [N, 3, S, S] normalized tiles of all images in prompt order, or None.
            state: optional LMState continued and updated in place (see NemotronHForCausalLM).
            image_embeds: [M, D_text] precomputed image tokens instead of pixel_values.
            logits_to_keep: if > 0, only the last that many positions get logits.
        Returns:
            logits: [B, T, V] (or [B, logits_to_keep, V]).
        """
        if pixel_values is not None and image_embeds is not None:
            raise ValueError("pass either pixel_values or image_embeds, not both")
        if pixel_values is not None:
            image_embeds = self.encode_images(pixel_values).flatten(0, 1)
        inputs_embeds = self.embed_inputs(input_ids, image_embeds)
        return self.language_model(inputs_embeds=inputs_embeds, state=state, logits_to_keep=logits_to_keep)


def vl_key_map(key: str) -> str | None:
    """Checkpoint key -> module key (identical names), or None for entries the model skips."""
    if key in _SKIPPED_KEYS or key.startswith(_SKIPPED_PREFIXES):
        return None
    return key


def build_vl_model(config: VLConfig, shapes: dict[str, tuple[int, ...]]) -> NemotronVL:
    """A NemotronVL shaped for a checkpoint, checking its vision and projector tensors.

    Args:
        config: parsed config.json.
        shapes: checkpoint key -> tensor shape (from loader.read_checkpoint_shapes).
    Returns:
        the model (weights not loaded). Raises ValueError naming a missing or mis-shaped
        vision/projector tensor.
    """
    mapped = {vl_key_map(k): tuple(v) for k, v in shapes.items()}
    if CLS_TOKEN_KEY not in mapped:
        raise ValueError(f"checkpoint is missing vision tensor `{CLS_TOKEN_KEY}`")
    model = NemotronVL(config, num_prefix_tokens=mapped[CLS_TOKEN_KEY][0],
                       use_layer_scale=LAYER_SCALE_KEY in mapped)
    for key, tensor in model.state_dict().items():
        if not key.startswith(("vision_model.", "mlp1.")):
            continue
        if key not in mapped:
            raise ValueError(f"checkpoint is missing tensor `{key}`")
        if mapped[key] != tuple(tensor.shape):
            raise ValueError(f"checkpoint tensor `{key}` has shape {list(mapped[key])}, "
                             f"expected {list(tensor.shape)} from config.json")
    return model
