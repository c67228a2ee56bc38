"""Dense video captions: schema-constrained JSON events per segment, merged, as JSON / WebVTT / SRT / PNG.

The model is asked for `[{"start": s, "end": s, "caption": "..."}]` under a JSON schema (times
bounded by the segment's length), so the output always parses; times come back on the segment's
own clock and are moved by the segment's start before the segments are joined.
"""
from __future__ import annotations

import bisect
import html
import json
import math
from dataclasses import asdict, dataclass
from typing import Iterable, Sequence

from nanovl.apps.figures import save_figure
from nanovl.inputs.transcript import format_timestamp

CAPTION_PROMPT = "Describe the events with timestamps."
MAX_CAPTIONS_PER_SEGMENT = 32
MAX_CAPTION_CHARS = 160
FORMATS = ("json", "vtt", "srt")
# shortest subtitle cue: long enough to read a word, and WebVTT / SRT need end > start
MIN_CUE_SECONDS = 0.5


@dataclass(frozen=True)
class Caption:
    """One event: media seconds [start, end) and what happens."""

    start: float
    end: float
    caption: str


def caption_schema(max_time: float) -> dict:
    """JSON schema of one segment's answer; times in [0, max_time] seconds of the segment."""
    limit = round(max(max_time, 0.0), 3)
    number = {"type": "number", "minimum": 0, "maximum": limit}
    return {
        "type": "array", "minItems": 1, "maxItems": MAX_CAPTIONS_PER_SEGMENT,
        "items": {"type": "object",
                  "properties": {"start": number, "end": number,
                                 "caption": {"type": "string", "minLength": 1, "maxLength": MAX_CAPTION_CHARS}},
                  "required": ["start", "end", "caption"], "additionalProperties": False},
    }


def response_format(max_time: float) -> dict:
    from nanovl.apps.schemas import response_format as json_format

    return json_format(caption_schema(max_time), "captions")


def parse_captions(text: str) -> list[Caption]:
    """Events of one answer; an answer cut short (max_tokens) keeps its complete events."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        cut = text.rfind("}")
        try:
            data = json.loads(text[:cut + 1] + "]") if cut > 0 else []
        except json.JSONDecodeError:
            data = []
    out = []
    for item in data if isinstance(data, list) else []:
        try:
            start, end = float(item["start"]), float(item["end"])
            # one line per cue: a newline would end a VTT/SRT cue early, "-->" would start a timing line
            words = " ".join(str(item["caption"]).split()).replace("-->", "->")
        except (TypeError, KeyError, ValueError):
            continue
        if words:
            out.append(Caption(min(start, end), max(start, end), words))
    return out


def place(captions: Iterable[Caption], offset: float, lo: float, hi: float) -> list[Caption]:
    """Move segment-clock captions to media time (+offset) and clamp them into [lo, hi]."""
    placed = []
    for c in captions:
        start = min(max(c.start + offset, lo), hi)
        end = min(max(c.end + offset, start), hi)
        placed.append(Caption(round(start, 3), round(end, 3), c.caption))
    return placed


def merge_captions(per_segment: Sequence[Sequence[Caption]], *, gap: float = 0.0,
                   boundaries: Sequence[float] | None = None) -> list[Caption]:
    """Join the segments' captions in time order; exact repeats are dropped.

    One event cut by a segment boundary becomes one caption again: the same caption in the next
    segment starting within `gap` s after the earlier one ends or, when `boundaries` (segment i starts
    at boundaries[i]) are given, an earlier piece ending within `gap` of the cut and a later one
    starting within `gap` of it. The second form is for models that, seeing only sampled frames,
    put a cut event's edges one frame inside each segment (the tiny model ends it on the segment's
    last frame and starts it one frame late): pass one frame interval as `gap`.
    """
    merged: list[Caption] = []
    for i, captions in enumerate(per_segment):
        cut = boundaries[i] if boundaries is not None and i > 0 else None
        for c in sorted(captions, key=lambda c: (c.start, c.end)):
            if c in merged:
                continue  # a weak model may repeat an event word for word
            join = next((j for j, m in enumerate(merged) if i > 0 and m.caption == c.caption
                         and m.end <= c.start + 1e-6 and _continues(m, c, gap, cut)), None)
            if join is not None:
                merged[join] = Caption(merged[join].start, max(merged[join].end, c.end), c.caption)
            else:
                merged.append(c)
    return sorted(merged, key=lambda c: (c.start, c.end))


def _continues(earlier: Caption, later: Caption, gap: float, cut: float | None) -> bool:
    if later.start - earlier.end <= gap + 1e-6:
        return True
    return cut is not None and abs(earlier.end - cut) <= gap + 1e-6 and abs(later.start - cut) <= gap + 1e-6


def dense_captions(session, *, max_tokens: int | None = None) -> list[Caption]:
    """Captions of the whole video of a VideoSession, segment by segment, in media time."""
    return ask_captions(session, max_tokens=max_tokens)[0]


def ask_captions(session, *, max_tokens: int | None = None) -> tuple[list[Caption], tuple[list, float, float]]:
    """(merged captions in media time, ask_segments' (outputs, prefix s, answer s))."""
    asked = session.ask_segments(CAPTION_PROMPT, max_tokens=max_tokens, remember=False,
                                 response_format=lambda seg: response_format(seg.end - seg.start))
    per_segment = [place(parse_captions(out.text), seg.offset, seg.start, seg.end)
                   for seg, out in zip(session.segments, asked[0])]
    return merge_captions(per_segment, gap=1.0 / session.options.fps,
                          boundaries=[seg.start for seg in session.segments]), asked


def to_json(captions: Sequence[Caption]) -> str:
    return json.dumps([asdict(c) for c in captions], indent=2) + "\n"


def cue_times(captions: Sequence[Caption], duration: float | None = None) -> list[tuple[float, float]]:
    """(start, end) of each caption as a subtitle cue, which needs end > start.

    A cue shorter than MIN_CUE_SECONDS (a one-frame event has start == end) is lengthened to it,
    but never past the start of the next cue nor past `duration` (the video's end), unless the
    event is at that very end: then it keeps MIN_CUE_SECONDS, since a cue may not be empty.
    """
    starts = sorted({c.start for c in captions})
    end_of_video = math.inf if duration is None else duration
    times = []
    for c in captions:
        later = bisect.bisect_right(starts, c.start)
        limit = min(starts[later] if later < len(starts) else math.inf, end_of_video)
        end = max(c.end, min(c.start + MIN_CUE_SECONDS, limit))
        times.append((c.start, end if end > c.start else c.start + MIN_CUE_SECONDS))
    return times


def _cue_text(text: str) -> str:
    # a blank line would end the cue early
    return " ".join(text.split())


def to_vtt(captions: Sequence[Caption], duration: float | None = None) -> str:
    # WebVTT cue text is markup: "&", "<" and ">" must be written as character references
    cues = [f"{format_timestamp(start)} --> {format_timestamp(end)}\n"
            f"{html.escape(_cue_text(c.caption), quote=False)}"
            for c, (start, end) in zip(captions, cue_times(captions, duration))]
    return "\n\n".join(["WEBVTT"] + cues) + "\n"


def to_srt(captions: Sequence[Caption], duration: float | None = None) -> str:
    # SubRip has no character references (players show "&amp;" as is), so the text stays raw
    cues = [f"{i}\n{format_timestamp(start, 'srt')} --> {format_timestamp(end, 'srt')}\n{_cue_text(c.caption)}"
            for i, (c, (start, end)) in enumerate(zip(captions, cue_times(captions, duration)), 1)]
    return "\n\n".join(cues) + "\n"


def render(captions: Sequence[Caption], fmt: str, duration: float | None = None) -> str:
    """Captions as a "json", "vtt" or "srt" document; `duration` (the video's) caps the subtitle cues."""
    if fmt not in FORMATS:
        raise ValueError(f"caption format must be one of {FORMATS}, got {fmt!r}")
    if fmt == "json":
        return to_json(captions)
    return (to_vtt if fmt == "vtt" else to_srt)(captions, duration)


def draw_timeline(captions: Sequence[Caption], duration: float, path: str, *,
                  boundaries: Sequence[float] = ()) -> str:
    """Save a picture at `path` (PNG unless its extension names another format): one bar per
    caption (overlapping events on separate rows), segment cuts dashed. Returns the path written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: list[float] = []  # end time of the last bar on each row
    placed = []
    for c in captions:
        # a bar reserves room for its label too, so labels of nearby events do not overprint
        end = max(c.end, c.start + 0.2 * max(duration, 1e-3))
        row = next((r for r, last in enumerate(rows) if last <= c.start), None)
        if row is None:
            row = len(rows)
            rows.append(end)
        rows[row] = end
        placed.append((row, c))
    fig, ax = plt.subplots(figsize=(10, 1.2 + 0.5 * max(1, len(rows))))
    for row, c in placed:
        width = max(c.end - c.start, duration / 400)
        ax.barh(row, width, left=c.start, height=0.8, color=f"C{row % 10}", alpha=0.7)
        ax.text(c.start, row, " " + c.caption[:60], va="center", fontsize=8, clip_on=True)
    for t in boundaries:
        ax.axvline(t, color="gray", linestyle="--", linewidth=0.8)
    ax.set_xlim(0, max(duration, 1e-3))
    ax.set_ylim(-0.6, max(1, len(rows)) - 0.4)
    ax.invert_yaxis()
    ax.set_yticks([])
    ax.set_xlabel("seconds")
    ax.set_title(f"{len(captions)} captions")
    fig.tight_layout()
    return save_figure(fig, path)
