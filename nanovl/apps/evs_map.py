"""EVS map: which patches Efficient Video Sampling keeps in each sampled frame, as a picture.

The retention mask is the one the engine applies (nanovl.inputs.evs.retention_mask over the
model's projected frame embeddings), so the picture and the token counts are what a prompt
with this video really costs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from nanovl.apps.figures import save_figure
from nanovl.inputs.evs import per_frame_counts, retention_mask
from nanovl.inputs.media_prompt import video_placeholder


@dataclass
class EvsMap:
    """Per-frame kept-token masks of one video.

    Attributes:
        frames: [F, S, S, 3] uint8 RGB frames as the model sees them (resized tiles).
        timestamps: frame times in seconds.
        mask: [F, r, r] bool, True for kept tokens (r * r tokens per frame, raster order).
        pruning_rate: EVS rate q.
        frame_text_tokens: tokens of the "Frame i sampled at t seconds: <img></img>" text.
    """

    frames: np.ndarray
    timestamps: list[float]
    mask: np.ndarray
    pruning_rate: float
    frame_text_tokens: int

    @property
    def tokens_without_evs(self) -> int:
        return int(self.mask.size)

    @property
    def tokens_with_evs(self) -> int:
        return int(self.mask.sum())

    def summary(self) -> str:
        """Token counts with and without EVS, video tokens and whole video prompt."""
        full, kept, text = self.tokens_without_evs, self.tokens_with_evs, self.frame_text_tokens
        return (f"{len(self.timestamps)} frames, {self.mask[0].size} tokens each; EVS pruning rate "
                f"{self.pruning_rate:g}\nvideo tokens without EVS: {full}\nvideo tokens with EVS:    {kept} "
                f"({100 * kept / full:.1f}% kept)\nvideo prompt tokens incl. frame text: {full + text} -> {kept + text}")


def frame_embeddings(llm, video, *, fps: float, max_frames: int):
    """(VideoFrames, [F, T, D] projected embeddings before EVS) of a video's sampled frames."""
    if hasattr(llm, "encode_video"):
        return llm.encode_video(video, fps=fps, max_frames=max_frames)
    # NOTE: LLM has no encode_video yet (requested in the apps report); until it lands this reads
    # the model through the engine, the one place apps/ does so
    from nanovl.inputs.video import load_video

    proc = llm.processor
    cfg = proc.config
    frames = load_video(video, fps=fps, max_frames=max_frames, image_size=cfg.force_image_size,
                        mean=cfg.norm_mean, std=cfg.norm_std)
    model = llm.engine.model
    weight = next(model.parameters())
    with torch.inference_mode():
        embeds = model.encode_images(frames.pixel_values.to(weight.device, weight.dtype))
    return frames, embeds.float().cpu()


def compute_evs_map(llm, video, *, pruning_rate: float, fps: float = 2.0, max_frames: int = 128) -> EvsMap:
    """Sample, encode and prune a video the way a prompt would; see EvsMap."""
    frames, embeds = frame_embeddings(llm, video, fps=fps, max_frames=max_frames)
    num_frames, tokens, _ = embeds.shape
    side = math.isqrt(tokens)
    mask = retention_mask(embeds, pruning_rate)
    if sum(per_frame_counts(mask, num_frames)) != llm.video_token_count(num_frames, pruning_rate):
        raise RuntimeError("EVS kept a different number of tokens than the processor plans for")
    cfg = llm.processor.config
    mean = torch.tensor(cfg.norm_mean).view(1, 3, 1, 1)
    std = torch.tensor(cfg.norm_std).view(1, 3, 1, 1)
    rgb = (frames.pixel_values.float() * std + mean).clamp(0, 1)
    pixels = (rgb * 255).round().byte().permute(0, 2, 3, 1).numpy()
    text = video_placeholder(frames.timestamps, [0] * num_frames)
    return EvsMap(pixels, list(frames.timestamps), mask.view(num_frames, side, side).numpy(), pruning_rate,
                  len(llm.tokenizer.encode(text)))


def draw_evs_map(evs: EvsMap, path: str, *, max_cols: int = 8) -> str:
    """Save a grid of the frames at `path` (PNG unless its extension names another format);
    pruned patches are darkened and tinted red, kept ones clear. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = len(evs.timestamps)
    cols = min(max_cols, num)
    rows = math.ceil(num / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.1 * rows + 0.6), squeeze=False)
    size = evs.frames.shape[1]
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= num:
            continue
        cell = size // evs.mask.shape[1]
        pruned = np.kron(~evs.mask[i], np.ones((cell, cell), dtype=bool))  # [S, S]
        overlay = np.zeros((size, size, 4), dtype=np.float32)
        overlay[pruned] = (0.35, 0.0, 0.0, 0.65)
        ax.imshow(evs.frames[i])
        ax.imshow(overlay)
        ax.set_title(f"{evs.timestamps[i]:.2f}s  {int(evs.mask[i].sum())}/{evs.mask[i].size}", fontsize=8)
    fig.suptitle(f"EVS q={evs.pruning_rate:g}: {evs.tokens_with_evs} of {evs.tokens_without_evs} video tokens "
                 f"kept (pruned patches shaded)", fontsize=10)
    fig.tight_layout()
    return save_figure(fig, path)
