"""Calibration requests of `nanovl quantize`: drawn from the training curriculum (the default), or
read from a JSONL file of OpenAI chat bodies, one `{"messages": [...]}` per line.

Each request is answered greedily for a few tokens, so calibration sees the prompt (prefill) and
the first answer tokens (decode), as a deployed model does.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nanovl.sampling_params import SamplingParams
from nanovl.train.samples import Mix

DECODE_TOKENS = 8
# the curriculum's full mixture: documents, charts, image pairs, videos, tiles, sums and drills
STAGE = 2
# a text-only LM cannot take images: its requests come from the mixture's text-only tasks
TEXT_ONLY_MIX = Mix(stage2=(("arithmetic", 1.0), ("comparison", 0.5)))
# training draws example i of dataset seed S as (S << 32) + i (train/data); calibration draws the same
SEED_SHIFT = 32


@dataclass(frozen=True)
class CalibrationRequest:
    """One conversation to run; `source` says where it came from, for error messages."""

    messages: list[dict[str, Any]]
    source: str
    enable_thinking: bool | None = None

    def sampling_params(self) -> SamplingParams:
        """Greedy, DECODE_TOKENS answer tokens."""
        return SamplingParams(temperature=0.0, max_tokens=DECODE_TOKENS, enable_thinking=self.enable_thinking)


def synthetic_requests(num_samples: int, workdir: str | Path, *, seed: int = 0,
                       text_only: bool = False) -> list[CalibrationRequest]:
    """`num_samples` requests drawn from the training curriculum (`samples.draw_sample`, stage 2),
    as `nanovl eval` asks them (`evaluate.sample_messages`); a video is written as an mp4 to
    `workdir`, which must outlive the requests. The eval's held-out seeds (>= 2**64) are never drawn.

    Args:
        seed: draws examples (seed << 32) + i, i < num_samples: training's own for dataset seed `seed`.
        text_only: only the text tasks (arithmetic and comparison drills), for a text-only LM.
    """
    from nanovl.train.evaluate import sample_messages
    from nanovl.train.samples import draw_sample

    if num_samples < 1:
        raise ValueError(f"calibration needs at least one sample, got {num_samples}")
    if not 0 <= seed < 2 ** SEED_SHIFT:
        raise ValueError(f"calibration seed must be in [0, 2**{SEED_SHIFT}), got {seed}")
    mix = TEXT_ONLY_MIX if text_only else Mix()
    out = []
    for i in range(num_samples):
        draw = (seed << SEED_SHIFT) + i
        ts = draw_sample(draw, STAGE, mix)
        out.append(CalibrationRequest(sample_messages(ts, workdir), f"sample {draw} ({ts.sample.task})",
                                      ts.thinking))
    return out


def read_calibration_file(path: str | Path) -> list[CalibrationRequest]:
    """The requests of a JSONL file: one OpenAI chat body per line, of which only "messages" is used
    (calibration always decodes DECODE_TOKENS greedy tokens). Blank lines are skipped.

    Raises ValueError naming the file (and line) when it cannot be read, a line is no JSON object
    with a non-empty "messages" list of objects, or it holds no request at all.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise ValueError(f"cannot read calibration file {path}: {reason}") from None
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            body = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: not valid JSON: {err}") from None
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
            raise ValueError(f'{where}: expected a chat request body {{"messages": [{{"role": ..., '
                             f'"content": ...}}, ...]}}')
        out.append(CalibrationRequest(messages, where))
    if not out:
        raise ValueError(f"calibration file {path} holds no requests")
    return out
