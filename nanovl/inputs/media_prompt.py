"""Placeholder text for images and videos in a rendered prompt (SPEC Part E).

An image becomes `<img>` + `<image>` * (tiles * tokens per tile) + `</img>`; a video becomes one
"Frame i sampled at t seconds: <img>...</img>" block per frame, joined by "\n" (vLLM's form).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence, Union


@dataclass(frozen=True)
class ImagePrompt:
    """An image's share of the prompt: its tile count (thumbnail included)."""

    num_tiles: int
    tokens_per_tile: int


@dataclass(frozen=True)
class VideoPrompt:
    """A video's share of the prompt: frame times (s) and tokens kept per frame (after EVS)."""

    timestamps: Sequence[float]
    counts: Sequence[int]


MediaPrompt = Union[ImagePrompt, VideoPrompt]


def image_placeholder(num_tiles: int, tokens_per_tile: int, *, start: str = "<img>",
                      context: str = "<image>", end: str = "</img>") -> str:
    """`start` + `context` * (num_tiles * tokens_per_tile) + `end`: one pair around all tiles."""
    if num_tiles < 1 or tokens_per_tile < 1:
        raise ValueError(f"need num_tiles >= 1 and tokens_per_tile >= 1, got "
                         f"{num_tiles}, {tokens_per_tile}")
    return start + context * (num_tiles * tokens_per_tile) + end


def video_placeholder(timestamps: Sequence[float], counts: Sequence[int], *, start: str = "<img>",
                      context: str = "<image>", end: str = "</img>") -> str:
    """Per frame i: ("\\n" if i > 0) + f"Frame {i+1} sampled at {t:.2f} seconds: " + start +
    context * counts[i] + end. A frame whose tokens were all pruned keeps its empty pair."""
    if len(timestamps) != len(counts) or not counts:
        raise ValueError(f"need one count per frame and at least one frame, got "
                         f"{len(timestamps)} timestamps and {len(counts)} counts")
    if min(counts) < 0:
        raise ValueError(f"token counts must be >= 0, got {list(counts)}")
    return "\n".join(f"Frame {i + 1} sampled at {t:.2f} seconds: {start}{context * n}{end}"
                     for i, (t, n) in enumerate(zip(timestamps, counts)))


def expand_media_placeholders(prompt: str, items: Sequence[MediaPrompt], *,
                              image_marker: str = "<image>", video_marker: str = "<video>",
                              start: str = "<img>", context: str = "<image>",
                              end: str = "</img>") -> str:
    """Replace the k-th image/video marker of `prompt` by the expansion of `items[k]`.

    One pass over the original prompt, so the `<image>` tokens an expansion writes are never
    taken for markers.

    Raises:
        ValueError when the marker and item counts differ, or a marker's kind (image/video)
        does not match its item's.
    """
    pieces = re.split(f"({re.escape(image_marker)}|{re.escape(video_marker)})", prompt)
    markers = pieces[1::2]
    if len(markers) != len(items):
        raise ValueError(f"prompt has {len(markers)} media markers but {len(items)} media items "
                         "were given")
    tokens = dict(start=start, context=context, end=end)
    for k, (marker, item) in enumerate(zip(markers, items)):
        if isinstance(item, ImagePrompt) and marker == image_marker:
            text = image_placeholder(item.num_tiles, item.tokens_per_tile, **tokens)
        elif isinstance(item, VideoPrompt) and marker == video_marker:
            text = video_placeholder(item.timestamps, item.counts, **tokens)
        else:
            raise ValueError(f"media marker #{k + 1} is {marker!r} but media item #{k + 1} is "
                             f"{type(item).__name__}")
        pieces[2 * k + 1] = text
    return "".join(pieces)
