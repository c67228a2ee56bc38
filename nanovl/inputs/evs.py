"""Efficient Video Sampling (SPEC Part F): drop video tokens that repeat the previous frame.

Pure functions on projected frame embeddings; the model calls them between the projector and
the merge, and the prompt is built from `per_frame_counts` of the same mask.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# dissimilarity given to frame 0 so that all of its tokens sort first (cosine dissim <= 2)
FIRST_FRAME_DISSIM = 255.0


def _check_rate(q: float) -> None:
    if not 0.0 <= q < 1.0:
        raise ValueError(f"video pruning rate must be in [0, 1), got {q}")


def retained_count(tokens_per_frame: int, num_frames: int, q: float) -> int:
    """Tokens kept of a video: max(T, int(T * F * (1 - q))), never less than one whole frame."""
    _check_rate(q)
    if tokens_per_frame < 1 or num_frames < 1:
        raise ValueError(f"need tokens_per_frame >= 1 and num_frames >= 1, got "
                         f"{tokens_per_frame}, {num_frames}")
    return max(tokens_per_frame, int(tokens_per_frame * num_frames * (1 - q)))


def retention_mask(embeds: torch.Tensor, q: float) -> torch.Tensor:
    """Which video tokens to keep, by how much each differs from the same position one frame back.

    Similarities are computed in float32 whatever the input dtype, so the kept set does not
    depend on bf16 rounding; equal dissimilarities keep the earlier token (stable sort).

    Args:
        embeds: [F, T, D] projected embeddings of F frames, T tokens each (raster order).
        q: pruning rate in [0, 1); 0 keeps everything.
    Returns:
        [F*T] bool, True for kept tokens; exactly retained_count(T, F, q) are True.
    """
    if embeds.dim() != 3:
        raise ValueError(f"retention_mask expects embeds [F, T, D], got shape {tuple(embeds.shape)}")
    num_frames, tokens_per_frame, _ = embeds.shape
    num_keep = retained_count(tokens_per_frame, num_frames, q)
    x = embeds.detach().float()
    dissim = torch.full((num_frames, tokens_per_frame), FIRST_FRAME_DISSIM, device=embeds.device)
    if num_frames > 1:
        dissim[1:] = 1.0 - F.cosine_similarity(x[1:], x[:-1], dim=-1)  # [F-1, T]
    order = torch.argsort(dissim.flatten(), descending=True, stable=True)
    mask = torch.zeros(num_frames * tokens_per_frame, dtype=torch.bool, device=embeds.device)
    mask[order[:num_keep]] = True
    return mask


def per_frame_counts(mask: torch.Tensor, num_frames: int) -> list[int]:
    """Kept tokens per frame. mask: [F*T] bool. Returns F ints summing to mask.sum()."""
    if mask.dim() != 1 or num_frames < 1 or mask.numel() % num_frames:
        raise ValueError(f"mask of shape {tuple(mask.shape)} does not split into {num_frames} frames")
    return mask.view(num_frames, -1).sum(dim=1).tolist()


def prune_video_embeds(embeds: torch.Tensor, q: float) -> tuple[torch.Tensor, list[int]]:
    """Apply EVS to one video.

    Args:
        embeds: [F, T, D].
    Returns:
        (kept [K, D] in original frame/raster order, per-frame counts summing to K).
    """
    mask = retention_mask(embeds, q)
    return embeds.flatten(0, 1)[mask], per_frame_counts(mask, embeds.shape[0])
