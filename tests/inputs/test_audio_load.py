"""load_audio / has_audio / resample_clip on the committed speech fixtures and broken inputs.

Run: pytest tests/inputs/test_audio_load.py
"""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

import nanovl
from nanovl.inputs.audio import AudioClip, has_audio, load_audio, resample_clip
from nanovl.inputs.errors import MediaError

SPEECH = Path(nanovl.__file__).parent / "assets" / "speech"
MANIFEST = json.loads((SPEECH / "manifest.json").read_text())


def _onset(samples: np.ndarray, sample_rate: int, threshold: float = 0.02) -> float:
    """Time of the first 10 ms window whose RMS exceeds `threshold`."""
    hop = sample_rate // 100
    n = len(samples) // hop
    rms = np.sqrt((samples[: n * hop].reshape(n, hop) ** 2).mean(1))
    return float(np.argmax(rms > threshold)) * hop / sample_rate


def _silent_video(path: Path, seconds: float = 1.0, fps: int = 10) -> Path:
    with av.open(str(path), mode="w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(round(seconds * fps)):
            f = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 20 % 255, np.uint8), format="rgb24")
            f.pts, f.time_base = i, Fraction(1, fps)
            c.mux(s.encode(f))
        c.mux(s.encode(None))
    return path


@pytest.mark.parametrize("entry", MANIFEST["fixtures"], ids=lambda e: e["file"])
def test_load_audio_fixture(entry):
    clip = load_audio(SPEECH / entry["file"])
    assert clip.sample_rate == 16000 and clip.samples.dtype == np.float32 and clip.samples.ndim == 1
    assert clip.start == 0.0 and clip.name == entry["file"]
    last = entry["utterances"][-1]["end"]
    assert last < clip.duration < last + 1.0
    assert abs(_onset(clip.samples, 16000) - entry["start"]) < 0.05
    assert (SPEECH / entry["file"]).stat().st_size < 60_000


def test_load_audio_resamples():
    path = SPEECH / MANIFEST["fixtures"][0]["file"]
    c16, c8 = load_audio(path), load_audio(path, sample_rate=8000)
    assert c8.sample_rate == 8000
    assert abs(c8.duration - c16.duration) < 0.01
    assert abs(_onset(c8.samples, 8000) - _onset(c16.samples, 16000)) < 0.02


def test_load_audio_start_end_cut():
    entry = MANIFEST["fixtures"][-1]
    full = load_audio(SPEECH / entry["file"])
    cut = load_audio(SPEECH / entry["file"], start=3.5, end=6.0)
    assert cut.start == pytest.approx(3.5) and cut.duration == pytest.approx(2.5, abs=1e-3)
    assert cut.end == pytest.approx(6.0, abs=1e-3)
    # the cut sees the second utterance at the same media time as the full clip does
    second = entry["utterances"][1]["start"]
    assert abs(cut.start + _onset(cut.samples, 16000) - second) < 0.05
    # 0.5 s of speech from media time 5.0 s on matches sample for sample
    at_cut, at_full = round((5.0 - 3.5) * 16000), round(5.0 * 16000)
    assert np.abs(full.samples[at_full:at_full + 8000]).max() > 0.1
    np.testing.assert_allclose(cut.samples[at_cut:at_cut + 8000], full.samples[at_full:at_full + 8000],
                               atol=0.02)


def test_load_audio_from_bytes_and_has_audio(tmp_path):
    path = SPEECH / MANIFEST["fixtures"][0]["file"]
    assert load_audio(path.read_bytes()).duration == pytest.approx(load_audio(path).duration)
    assert has_audio(path)
    assert not has_audio(_silent_video(tmp_path / "silent.mp4"))


def test_no_audio_stream_is_a_clear_error(tmp_path):
    video = _silent_video(tmp_path / "silent.mp4")
    with pytest.raises(MediaError, match=r"silent\.mp4: no audio stream"):
        load_audio(video)
    with pytest.raises(MediaError, match=r"^clip #3: no audio stream"):
        load_audio(video.read_bytes(), name="clip #3")


def test_missing_and_corrupt_files_are_clear_errors(tmp_path):
    with pytest.raises(MediaError, match=r"nope\.wav: no such file"):
        load_audio(tmp_path / "nope.wav")
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"\x00not audio at all" * 64)
    with pytest.raises(MediaError, match=r"junk\.mp3: not a readable media file"):
        load_audio(junk)
    with pytest.raises(MediaError, match=r"junk\.mp3: not a readable media file"):
        has_audio(junk)
    # cut inside the Ogg headers: the container cannot even be probed
    good = (SPEECH / MANIFEST["fixtures"][0]["file"]).read_bytes()
    with pytest.raises(MediaError, match="^audio bytes: not a readable media file"):
        load_audio(good[:200])


def test_empty_range_is_an_error():
    path = SPEECH / MANIFEST["fixtures"][0]["file"]
    with pytest.raises(MediaError, match="after start"):
        load_audio(path, start=2.0, end=1.0)
    with pytest.raises(MediaError, match="no audio samples"):
        load_audio(path, start=30.0)


def test_resample_clip_keeps_time_and_tone():
    t = np.arange(16000) / 16000
    clip = AudioClip(np.sin(2 * np.pi * 440 * t).astype(np.float32), 16000, start=2.0)
    out = resample_clip(clip, 8000)
    assert out.sample_rate == 8000 and out.start == 2.0 and abs(len(out.samples) - 8000) <= 32
    spectrum = np.abs(np.fft.rfft(out.samples[:8000]))
    assert abs(np.argmax(spectrum) * 8000 / 8000 - 440) <= 1
