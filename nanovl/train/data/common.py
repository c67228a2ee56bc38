"""The `Sample` record every generator returns, plus the small helpers they share (fonts, chat, JSON, noise)."""
from __future__ import annotations

import functools
import json
import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageFont

FAMILIES = ("sans", "serif", "mono")
_FONT_FILES = {
    ("sans", False): "DejaVuSans.ttf", ("sans", True): "DejaVuSans-Bold.ttf",
    ("serif", False): "DejaVuSerif.ttf", ("serif", True): "DejaVuSerif-Bold.ttf",
    ("mono", False): "DejaVuSansMono.ttf", ("mono", True): "DejaVuSansMono-Bold.ttf",
}
_SYSTEM_FONT_DIR = "/usr/share/fonts/truetype/dejavu"


@dataclass
class Sample:
    """One training or evaluation example with its exact ground truth.

    Attributes:
        task: generator name, e.g. "document", "chart", "video".
        messages: OpenAI-style chat; the user turn holds {"type": "image"} / {"type": "video"}
            markers (in the order of `images`) and one text part; the assistant turn is `target`.
        target: the exact assistant text the model should produce.
        truth: structured ground truth for evaluation (all values the question could ask about).
        images: PIL images, one per {"type": "image"} marker.
        video_path: the mp4 written for a {"type": "video"} marker, else None.
        frames: decoded or rendered frames when a generator keeps them in memory, else None.
        thinking: whether the target carries a <think> trace.
        reasoning: the trace inside <think>...</think>, else None.
        seed: the seed that reproduces this sample.
    """

    task: str
    messages: list[dict[str, Any]]
    target: str
    truth: dict[str, Any]
    images: list[Image.Image] = field(default_factory=list)
    video_path: str | None = None
    frames: list[Any] | None = None
    thinking: bool = False
    reasoning: str | None = None
    seed: int | None = None

    @property
    def question(self) -> str:
        """The text part of the user turn."""
        parts = self.messages[0]["content"]
        return next(p["text"] for p in parts if p["type"] == "text")


def chat(question: str, target: str, *, num_images: int = 0, video: bool = False) -> list[dict[str, Any]]:
    """Build the two-turn chat: media markers first, then the question; the assistant answers `target`."""
    parts: list[dict[str, Any]] = [{"type": "image"} for _ in range(num_images)]
    if video:
        parts.append({"type": "video"})
    parts.append({"type": "text", "text": question})
    return [{"role": "user", "content": parts}, {"role": "assistant", "content": target}]


def to_json(obj: Any) -> str:
    """Compact JSON with the caller's key order kept, so targets are one exact string."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def format_number(value: float, decimals: int) -> str:
    """Print a value with a fixed number of decimals ("42", "12.5", "19.00")."""
    return f"{value:.{decimals}f}"


@functools.lru_cache(maxsize=64)
def load_font(family: str, size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """A DejaVu TrueType font; prefers matplotlib's bundled copy so renders match across machines.

    Args:
        family: "sans", "serif" or "mono".
        size: pixel size.
        bold: bold weight.
    """
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
    import matplotlib

    name = _FONT_FILES[(family, bold)]
    for folder in (os.path.join(matplotlib.get_data_path(), "fonts", "ttf"), _SYSTEM_FONT_DIR):
        path = os.path.join(folder, name)
        if os.path.exists(path):
            return ImageFont.truetype(path, size)
    raise FileNotFoundError(f"font {name} not found in matplotlib's data or {_SYSTEM_FONT_DIR}")


def numpy_rng(rng: random.Random) -> np.random.Generator:
    """A numpy Generator drawn from `rng`, so one seed drives both."""
    return np.random.default_rng(rng.getrandbits(63))


def augment(image: Image.Image, rng: random.Random, *, max_angle: float = 2.0, max_noise: float = 6.0,
            fill: tuple[int, int, int] = (255, 255, 255)) -> Image.Image:
    """Rotate by at most `max_angle` degrees and add Gaussian pixel noise; deterministic given `rng`.

    Args:
        image: RGB image.
        rng: source of the angle and the noise seed.
        max_angle: largest absolute rotation in degrees.
        max_noise: largest noise standard deviation in 0..255 units.
        fill: colour of the corners the rotation exposes (the page colour).
    """
    angle = rng.uniform(-max_angle, max_angle)
    sigma = rng.uniform(0.0, max_noise)
    out = image.rotate(angle, resample=Image.BICUBIC, expand=False, fillcolor=fill)
    # float32 noise + pixels, rounded and clipped in the noise's own buffer: the same values as the
    # out-of-place form (tested), ~7 ms less of a page's ~60 (augment is most of a page's cost)
    noisy = numpy_rng(rng).normal(0.0, sigma, size=(out.height, out.width, 3)).astype(np.float32)
    noisy += np.asarray(out)
    np.rint(noisy, out=noisy)
    np.clip(noisy, 0, 255, out=noisy)
    return Image.fromarray(noisy.astype(np.uint8), mode="RGB")
