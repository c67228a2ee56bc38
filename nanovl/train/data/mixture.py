"""A deterministic, weighted stream of samples from all curriculum tasks.

Example i of a dataset with seed s is generated from seed s * 2**32 + i. Training seeds live below
HELD_OUT_SEED_OFFSET and `held_out_dataset` adds the offset, so evaluation never reuses a training example.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path

from .charts import make_chart_sample
from .common import Sample
from .documents import make_document_sample
from .multi_image import make_multi_image_sample
from .reasoning import make_reasoning_sample
from .videos import make_video_sample

HELD_OUT_SEED_OFFSET = 1_000_000_000
_INDEX_BITS = 32


def _video(seed: int, workdir: Path, audio: bool) -> Sample:
    return make_video_sample(seed, workdir / "videos", audio=audio)


# task name -> generator(seed, workdir, audio); only videos touch the disk or need espeak-ng
TASKS: dict[str, Callable[[int, Path, bool], Sample]] = {
    "document": lambda seed, workdir, audio: make_document_sample(seed),
    "chart": lambda seed, workdir, audio: make_chart_sample(seed),
    "multi_image": lambda seed, workdir, audio: make_multi_image_sample(seed),
    "reasoning": lambda seed, workdir, audio: make_reasoning_sample(seed),
    "video": _video,
}


def example_seed(seed: int, index: int) -> int:
    """The generator seed of example `index` in the dataset with `seed`."""
    return (seed << _INDEX_BITS) + index


def _check(task_weights: dict[str, float], n: int) -> None:
    unknown = sorted(set(task_weights) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}; known: {sorted(TASKS)}")
    if any(w < 0 for w in task_weights.values()) or sum(task_weights.values()) <= 0:
        raise ValueError(f"task weights must be >= 0 with a positive sum, got {task_weights}")
    if not 0 <= n < 2 ** _INDEX_BITS:
        raise ValueError(f"n must be in [0, 2**{_INDEX_BITS}), got {n}")


def _stream(task_weights: dict[str, float], n: int, seed: int, workdir: Path, audio: bool) -> Iterator[Sample]:
    names = sorted(task_weights)
    weights = [task_weights[k] for k in names]
    rng = random.Random(seed)
    for i in range(n):
        task = rng.choices(names, weights=weights)[0]
        yield TASKS[task](example_seed(seed, i), workdir, audio)


def make_dataset(task_weights: dict[str, float], n: int, seed: int, workdir: str | Path, *,
                 audio: bool = True) -> Iterator[Sample]:
    """Yield `n` training samples, each task drawn with probability proportional to its weight.

    Args:
        task_weights: task name (a key of TASKS) -> weight, e.g. {"document": 2, "chart": 1}.
        n: number of samples.
        seed: dataset seed in [0, HELD_OUT_SEED_OFFSET); same seed, same samples in the same order.
        workdir: folder for files some tasks write (videos go to workdir/videos).
        audio: give videos a spoken narration (needs espeak-ng).
    """
    _check(task_weights, n)
    if not 0 <= seed < HELD_OUT_SEED_OFFSET:
        raise ValueError(f"training seeds must be in [0, {HELD_OUT_SEED_OFFSET}), got {seed}")
    return _stream(task_weights, n, seed, Path(workdir), audio)


def held_out_dataset(task_weights: dict[str, float], n: int, seed: int, workdir: str | Path, *,
                     audio: bool = True) -> Iterator[Sample]:
    """Like `make_dataset`, but from seed + HELD_OUT_SEED_OFFSET, disjoint from every training seed."""
    _check(task_weights, n)
    if not 0 <= seed < HELD_OUT_SEED_OFFSET:
        raise ValueError(f"seed must be in [0, {HELD_OUT_SEED_OFFSET}), got {seed}")
    return _stream(task_weights, n, seed + HELD_OUT_SEED_OFFSET, Path(workdir), audio)
