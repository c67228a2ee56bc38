"""Videos longer than the context: split the sampled frames into segments that fit, merge the answers.

The plan is made before any pixel is decoded, from token counts alone: each sampled frame costs
its `<img>`/`</img>` pair, its "Frame i sampled at t seconds: " line and the speech lines heard
after it; the video's `<image>` tokens follow the EVS retained count. Segments are balanced (equal
frame counts) when that fits, else cut greedily.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from nanovl.inputs.media_prompt import video_placeholder
from nanovl.inputs.transcript import Transcript, interleave


@dataclass(frozen=True)
class SegmentPlan:
    """Samples first..last (inclusive) of the video, covering media seconds [start, end)."""

    first: int
    last: int
    start: float
    end: float
    num_tokens: int

    @property
    def num_samples(self) -> int:
        return self.last - self.first + 1


class ContextTooSmallError(ValueError):
    """Not even one frame (plus the question and the answer) fits the context."""


def frame_text_costs(times: Sequence[float], transcript: Transcript | None,
                     count: Callable[[str], int]) -> list[int]:
    """Text tokens each sample brings: its frame line, `<img></img>`, and the speech lines after it.

    Args:
        times: sample times (s) of the whole video.
        transcript: speech of the video, or None.
        count: text -> number of tokens.
    """
    # worst case for a segment: the frame numbers and times of the full video, not the clip's
    lines = video_placeholder(list(times), [0] * len(times)).split("\n")
    slots = interleave(list(times), transcript) if transcript is not None else [(i, []) for i in range(len(times))]
    return [count("\n" + line) + sum(count("\n" + s) for s in speech) for line, (_, speech) in zip(lines, slots)]


def plan_segments(times: Sequence[float], duration: float, text_costs: Sequence[int],
                  video_tokens: Callable[[int], int], budget: int) -> list[SegmentPlan]:
    """Split samples into contiguous segments whose prompt tokens each stay within `budget`.

    Args:
        times: sample times (s), uniform step.
        duration: video length (s); the last segment ends there.
        text_costs: per-sample text tokens (`frame_text_costs`).
        video_tokens: number of frames -> `<image>` tokens of that many frames (EVS included).
        budget: tokens the video part of one prompt may use.
    Raises:
        ContextTooSmallError when a single frame does not fit.
    """
    n = len(times)

    def cost(a: int, b: int) -> int:
        return video_tokens(b - a + 1) + sum(text_costs[a:b + 1])

    if cost(0, 0) > budget:
        raise ContextTooSmallError(f"one video frame needs {cost(0, 0)} tokens but only {budget} are "
                                   "left for the video; raise --max-context or lower --max-tokens")
    if cost(0, n - 1) <= budget:
        return [_plan(0, n - 1, times, duration, cost)]
    # 1) greedy: longest segments that fit, to learn how many are needed
    greedy, a = [], 0
    while a < n:
        b = a
        while b + 1 < n and cost(a, b + 1) <= budget:
            b += 1
        greedy.append((a, b))
        a = b + 1
    # 2) the same number of segments with equal frame counts, when every one of them fits
    k = len(greedy)
    bounds = [round(i * n / k) for i in range(k + 1)]
    balanced = [(bounds[i], bounds[i + 1] - 1) for i in range(k)]
    groups = balanced if all(cost(a, b) <= budget for a, b in balanced) else greedy
    return [_plan(a, b, times, duration, cost) for a, b in groups]


def _plan(a: int, b: int, times: Sequence[float], duration: float, cost) -> SegmentPlan:
    end = times[b + 1] if b + 1 < len(times) else max(duration, times[b])
    return SegmentPlan(a, b, times[a], end, cost(a, b))


def clock(t: float) -> str:
    """Seconds as "m:ss" (or "h:mm:ss" past an hour), for time ranges shown to people and the model."""
    t = int(round(t))
    h, rest = divmod(t, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def time_range(start: float, end: float) -> str:
    return f"[{clock(start)}-{clock(end)}]"


def merge_prompt(question: str, parts: Sequence[tuple[float, float, str]], *, summary_bullets: int | None = None) -> str:
    """The text-only prompt that merges per-segment answers into one.

    Args:
        question: what each segment was asked.
        parts: (start s, end s, answer) per segment, in time order.
        summary_bullets: merge summaries into this many bullet points instead of answering.
    """
    body = "\n\n".join(f"{time_range(s, e)}\n{text.strip()}" for s, e, text in parts)
    if summary_bullets is not None:
        return (f"These are summaries of consecutive parts of one video, each with its time range.\n\n"
                f"{body}\n\nMerge them into {summary_bullets} bullet points about the whole video.")
    return (f"These are answers to the question \"{question}\" about consecutive parts of one video, "
            f"each with its time range.\n\n{body}\n\nGive one answer for the whole video.")


def fit_parts(parts: Sequence[tuple[float, float, str]], budget: int, count: Callable[[str], int]) -> list[tuple[float, float, str]]:
    """Shorten the part answers (by whole words from the end) until together they cost <= budget tokens."""
    out = list(parts)
    per_part = max(8, budget // max(1, len(out)))
    for i, (s, e, text) in enumerate(out):
        words = text.split()
        while words and count(" ".join(words)) > per_part:
            words = words[: max(1, int(len(words) * 0.8))] if len(words) > 1 else []
        out[i] = (s, e, " ".join(words))
    return out
