"""Timestamped transcripts and how they meet a prompt: text lines, frame interleaving, VTT/SRT.

All times are media seconds on the same clock as video frame timestamps.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from typing import Callable


@dataclass(frozen=True)
class Word:
    """One recognised word; `word` keeps Whisper's leading space and punctuation."""

    start: float
    end: float
    word: str
    probability: float = 1.0


@dataclass(frozen=True)
class Segment:
    """A stretch of speech (roughly a sentence) with its words."""

    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """Segments in time order, plus the language and the duration of audio that was heard."""

    segments: tuple[Segment, ...] = ()
    language: str = "en"
    duration: float = 0.0

    @property
    def words(self) -> list[Word]:
        """Every word of every segment, in time order."""
        return [w for s in self.segments for w in s.words]

    @property
    def text(self) -> str:
        """All segment texts joined by single spaces."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def shifted(self, offset: float) -> "Transcript":
        """The same transcript with every time moved by `offset` seconds."""
        segments = tuple(
            replace(s, start=s.start + offset, end=s.end + offset,
                    words=tuple(replace(w, start=w.start + offset, end=w.end + offset)
                                for w in s.words))
            for s in self.segments)
        return Transcript(segments, self.language, self.duration)


def format_timestamp(t: float, fmt: str = "vtt") -> str:
    """Format seconds as a subtitle time code.

    Args:
        t: time in seconds, >= 0.
        fmt: "vtt" -> "HH:MM:SS.mmm" (WebVTT), "srt" -> "HH:MM:SS,mmm" (SubRip).
    Returns:
        the time code, rounded to the nearest millisecond.
    """
    if fmt not in ("vtt", "srt"):
        raise ValueError(f"fmt must be 'vtt' or 'srt', got {fmt!r}")
    if t < 0:
        raise ValueError(f"timestamp must be >= 0, got {t}")
    ms = round(t * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    seconds, ms = divmod(ms, 1000)
    sep = "." if fmt == "vtt" else ","
    return f"{hours:02d}:{minutes:02d}:{seconds:02d}{sep}{ms:03d}"


def to_vtt(transcript: Transcript) -> str:
    """The transcript as a WebVTT document, one cue per segment."""
    cues = [f"{format_timestamp(s.start)} --> {format_timestamp(s.end)}\n{s.text.strip()}"
            for s in transcript.segments]
    return "\n\n".join(["WEBVTT"] + cues) + "\n"


def to_srt(transcript: Transcript) -> str:
    """The transcript as a SubRip (.srt) document, cues numbered from 1."""
    cues = [f"{i}\n{format_timestamp(s.start, 'srt')} --> {format_timestamp(s.end, 'srt')}\n"
            f"{s.text.strip()}" for i, s in enumerate(transcript.segments, 1)]
    return "\n\n".join(cues) + "\n"


def _overlaps(seg: Segment, start: float | None, end: float | None) -> bool:
    return (start is None or seg.end > start) and (end is None or seg.start < end)


def to_prompt_lines(transcript: Transcript, *, start: float | None = None,
                    end: float | None = None) -> list[tuple[float, str]]:
    """Timestamped text lines for the segments that overlap [start, end).

    Returns:
        [(segment start, "[12.3s-15.0s] text"), ...] in time order, ready to be merged with
        other timed prompt parts (video frames) by sorting on the first element.
    """
    return [(s.start, f"[{s.start:.1f}s-{s.end:.1f}s] {s.text.strip()}")
            for s in transcript.segments if _overlaps(s, start, end) and s.text.strip()]


def speech_line(segment: Segment) -> str:
    """Default interleave line: "Speech at 12.30-15.00 seconds: text"."""
    return f"Speech at {segment.start:.2f}-{segment.end:.2f} seconds: {segment.text.strip()}"


# how far apart a segment start and a frame time may be and still name the same instant
SAME_INSTANT_SECONDS = 1e-3


def interleave(frame_times: list[float], transcript: Transcript, *,
               line: Callable[[Segment], str] = speech_line) -> list[tuple[int, list[str]]]:
    """Assign each segment to the frame slot where it starts.

    Slot i covers [frame_times[i], frame_times[i+1]); speech that starts before the first frame
    goes to slot 0. A workflow emits frame i, then the lines of slot i, then frame i+1, ...

    Args:
        frame_times: timestamps of the sampled frames in seconds, non-decreasing.
        transcript: the speech of the same media.
        line: formats one segment as prompt text.
    Returns:
        [(frame_index, [line, ...]), ...] with one entry per frame, in frame order.
    """
    if any(b < a for a, b in zip(frame_times, frame_times[1:])):
        raise ValueError("frame_times must be non-decreasing")
    slots: list[tuple[int, list[str]]] = [(i, []) for i in range(len(frame_times))]
    if not slots:
        return slots
    for seg in transcript.segments:
        if not seg.text.strip():
            continue
        # the last frame shown at or before the segment's start; a start within a millisecond of a
        # frame counts as at it: an NTSC frame time (1001/30000 s steps) written to the millisecond
        # reads a hair before the frame it names and would land one slot early
        i = max(0, bisect.bisect_right(frame_times, seg.start + SAME_INSTANT_SECONDS) - 1)
        slots[i][1].append(line(seg))
    return slots
