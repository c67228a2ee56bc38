"""Narrated-video helpers (nanovl.train.speech): espeak-ng synthesis, audio muxing, fixtures.

Run: pytest tests/inputs/test_audio_speech.py   (synthesis tests skip without espeak-ng)
"""
from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import nanovl
from nanovl.inputs.audio import has_audio, load_audio
from nanovl.train import speech
from nanovl.train.speech import mux_audio_into_video, synthesize_speech, write_audio

SPEECH = Path(nanovl.__file__).parent / "assets" / "speech"
MANIFEST = json.loads((SPEECH / "manifest.json").read_text())
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")


def _onset(samples: np.ndarray, sample_rate: int, threshold: float = 0.02) -> float:
    """Time of the first 10 ms window whose RMS exceeds `threshold`."""
    hop = sample_rate // 100
    n = len(samples) // hop
    rms = np.sqrt((samples[: n * hop].reshape(n, hop) ** 2).mean(1))
    return float(np.argmax(rms > threshold)) * hop / sample_rate


def _video(path: Path, seconds: float, fps: int = 10, first_pts: int = 0) -> Path:
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(round(seconds * fps)):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 9 % 255, np.uint8), format="rgb24")
            f.pts, f.time_base = first_pts + i, Fraction(1, fps)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


def _frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as c:
        return [float(f.pts * f.time_base) for f in c.decode(video=0)]


@pytest.mark.parametrize("start_time", [0.0, 1.25, 3.0])
def test_mux_places_speech_at_start_time(tmp_path, start_time):
    utterance = MANIFEST["fixtures"][0]
    speech_only = load_audio(SPEECH / utterance["file"]).samples[round(utterance["start"] * 16000):]
    video = _video(tmp_path / "in.mp4", seconds=6.0)
    out = mux_audio_into_video(video, speech_only, 16000, start_time, tmp_path / "out.mp4")
    assert has_audio(out) and not has_audio(video)
    clip = load_audio(out)
    # the brief allows 0.2 s; the AAC path is sample-exact, so hold it to one RMS window or so
    assert abs(_onset(clip.samples, 16000) - start_time) < 0.05
    # silence before the speech, and the track spans the whole video
    before = clip.samples[: max(0, round((start_time - 0.05) * 16000))]
    assert before.size == 0 or np.abs(before).max() < 0.01
    assert clip.duration >= 6.0 - 0.05
    # video packets were copied, so frame times are unchanged
    assert _frame_times(out) == _frame_times(video)


def test_mux_extends_track_past_video_end(tmp_path):
    video = _video(tmp_path / "short.mp4", seconds=1.0)
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(32000) / 16000)).astype(np.float32)
    out = mux_audio_into_video(video, tone, 16000, 0.5, tmp_path / "out.mkv")
    clip = load_audio(out)
    assert clip.duration == pytest.approx(2.5, abs=0.1)
    assert abs(_onset(clip.samples, 16000) - 0.5) < 0.2


def test_times_count_from_the_first_video_frame(tmp_path):
    # the video's first frame is at 0.5 s; video.py calls that time 0, and so must the audio
    video = _video(tmp_path / "late.mkv", seconds=3.0, first_pts=5)
    with av.open(str(video)) as c:
        assert float(c.streams.video[0].start_time * c.streams.video[0].time_base) == 0.5
    tone = (0.3 * np.sin(2 * np.pi * 300 * np.arange(8000) / 16000)).astype(np.float32)
    out = mux_audio_into_video(video, tone, 16000, 1.0, tmp_path / "out.mkv")
    clip = load_audio(out)
    assert clip.start == 0.0
    assert abs(_onset(clip.samples, 16000) - 1.0) < 0.05
    cut = load_audio(out, start=0.8)
    assert abs(cut.start + _onset(cut.samples, 16000) - 1.0) < 0.05


def test_mux_rejects_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="start_time"):
        mux_audio_into_video(_video(tmp_path / "v.mp4", 1.0), np.zeros(10, np.float32), 16000, -1.0,
                             tmp_path / "o.mp4")
    audio_only = write_audio(tmp_path / "a.ogg", np.zeros(16000, np.float32))
    with pytest.raises(ValueError, match="no video stream"):
        mux_audio_into_video(audio_only, np.zeros(10, np.float32), 16000, 0.0, tmp_path / "o.mp4")


def test_write_audio_round_trip(tmp_path):
    tone = (0.5 * np.sin(2 * np.pi * 500 * np.arange(16000) / 16000)).astype(np.float32)
    signal = np.concatenate([np.zeros(8000, np.float32), tone])
    for name in ("t.ogg", "t.m4a"):
        clip = load_audio(write_audio(tmp_path / name, signal))
        assert abs(clip.duration - 1.5) < 0.08, name
        assert abs(_onset(clip.samples, 16000) - 0.5) < 0.03, name
    with pytest.raises(ValueError, match="suffix"):
        write_audio(tmp_path / "t.xyz", signal)


def test_missing_espeak_names_the_package(monkeypatch):
    monkeypatch.setattr(speech.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        synthesize_speech("hello")


@needs_espeak
def test_synthesize_speech():
    short, long = synthesize_speech("Hi."), synthesize_speech("This sentence is much longer than hi.")
    assert short.dtype == np.float32 and short.ndim == 1
    assert 0.1 < np.abs(long).max() <= 1.0
    assert 0.2 < len(short) / 16000 < len(long) / 16000 < 6.0
    assert len(synthesize_speech("Hi.", sample_rate=8000)) == pytest.approx(len(short) / 2, rel=0.02)


@needs_espeak
def test_fixtures_regenerate_to_the_committed_manifest(tmp_path):
    regenerated = json.loads(speech.write_speech_fixtures(tmp_path).read_text())
    assert [e["file"] for e in regenerated["fixtures"]] == [e["file"] for e in MANIFEST["fixtures"]]
    for new, old in zip(regenerated["fixtures"], MANIFEST["fixtures"]):
        assert new["text"] == old["text"]
        for u_new, u_old in zip(new["utterances"], old["utterances"]):
            # starts are set by the recipe; ends depend a little on the espeak-ng version
            assert u_new["start"] == pytest.approx(u_old["start"], abs=0.3)
            assert u_new["end"] == pytest.approx(u_old["end"], abs=0.3)
    total = sum(p.stat().st_size for p in SPEECH.iterdir())
    assert total < 300_000
