"""Video generator: decoded mp4 frames show each event exactly from its stated time; narration is audible then."""
from __future__ import annotations

import json

import av
import numpy as np
import pytest

from nanovl.train.data import videos
from nanovl.train.data.videos import COLORS, NUM_LANES, SpeechUnavailableError, has_speech, make_video_sample

needs_speech = pytest.mark.skipif(not has_speech(), reason="espeak-ng not installed")


def _decode_frames(path: str, fps: int) -> dict[int, np.ndarray]:
    with av.open(path) as c:
        return {round(f.time * fps): f.to_ndarray(format="rgb24") for f in c.decode(video=0)}


def _decode_audio(path: str) -> tuple[np.ndarray, float, int]:
    with av.open(path) as c:
        frames = list(c.decode(audio=0))
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    return samples, float(frames[0].time), frames[0].sample_rate


def _lane(frame: np.ndarray, lane: int) -> np.ndarray:
    h = frame.shape[0] // NUM_LANES
    return frame[lane * h:(lane + 1) * h].astype(np.int32)


def _shape_pixels(frame, event) -> int:
    return int((np.abs(_lane(frame, event["lane"]) - COLORS[event["color"]]).sum(axis=2) < 60).sum())


def _word_pixels(frame, event) -> int:
    return int((_lane(frame, event["lane"]).min(axis=2) > 200).sum())


def _check_events(sample):
    truth = sample.truth
    fps, size = truth["fps"], truth["size"]
    frames = _decode_frames(sample.video_path, fps)
    assert sorted(frames) == list(range(truth["num_frames"]))
    for e in truth["events"]:
        first, last = round(e["start"] * fps), round(e["end"] * fps) - 1
        count = _word_pixels if e["kind"] == "word" else _shape_pixels
        # shown on its first and last frame, absent on the frames just outside its span
        assert count(frames[first], e) > 30 and count(frames[last], e) > 30, e
        assert count(frames[first - 1], e) <= 2 and count(frames[last + 1], e) <= 2, e
        if e["kind"] == "shape":
            x = round(e["x0"])
            y = round((e["lane"] + 0.5) * size / NUM_LANES) + 2
            patch = frames[first][y - 1:y + 2, x - 1:x + 2].reshape(-1, 3).mean(axis=0)
            assert np.abs(patch - COLORS[e["color"]]).max() < 40, (e, patch)


def test_events_are_on_screen_exactly_when_stated(tmp_path):
    for seed in range(5):
        _check_events(make_video_sample(seed, tmp_path, audio=False))


def test_appear_question_names_the_first_frame_with_the_shape(tmp_path):
    s = make_video_sample(11, tmp_path, audio=False, question="appear")
    color, shape = s.question.split("the ")[1].split(" appear")[0].split()[:2]
    event = next(e for e in s.truth["events"] if (e["color"], e["name"]) == (color, shape))
    assert s.target == f"{event['start']:.1f}"
    frames = _decode_frames(s.video_path, s.truth["fps"])
    k = round(float(s.target) * s.truth["fps"])
    assert _shape_pixels(frames[k], event) > 30 and _shape_pixels(frames[k - 1], event) <= 2


def test_dense_captions_target_is_sorted_json(tmp_path):
    s = make_video_sample(3, tmp_path, audio=False, question="dense")
    captions = json.loads(s.target)
    assert captions == s.truth["captions"] and len(captions) == len(s.truth["events"])
    assert [c["start"] for c in captions] == sorted(c["start"] for c in captions)
    assert all(0 < c["start"] < c["end"] < s.truth["duration"] and list(c) == ["start", "end", "caption"]
               for c in captions)
    assert [p["type"] for p in s.messages[0]["content"]] == ["video", "text"]


def test_same_seed_same_file_and_different_seed_differs(tmp_path):
    a = make_video_sample(4, tmp_path / "a", audio=has_speech())
    b = make_video_sample(4, tmp_path / "b", audio=has_speech())
    c = make_video_sample(5, tmp_path / "c", audio=has_speech())
    read = lambda s: open(s.video_path, "rb").read()  # noqa: E731
    assert read(a) == read(b) and (a.target, a.truth) == (b.target, b.truth)
    assert read(a) != read(c) and a.truth != c.truth


@needs_speech
def test_narration_is_heard_from_its_start_time(tmp_path):
    for seed in range(3):
        s = make_video_sample(seed, tmp_path, question="narration")
        n = s.truth["narration"]
        assert s.target == n["value"] and n["key"] in s.question and n["value"] in n["text"]
        audio, t0, rate = _decode_audio(s.video_path)
        assert rate == 16000
        at = lambda t: int((t - t0) * rate)  # noqa: E731
        assert np.abs(audio[:at(n["start"] - 0.15)]).max() < 0.01
        assert np.sqrt(np.mean(audio[at(n["start"]):at(n["start"] + 0.5)] ** 2)) > 0.02
        assert np.abs(audio[at(n["end"] + 0.25):]).max() < 0.01
        # the fact is spoken only: no frame carries the narration
        assert n["value"] not in json.dumps(s.truth["events"])


@needs_speech
def test_audio_track_is_16k_mono(tmp_path):
    s = make_video_sample(6, tmp_path)
    with av.open(s.video_path) as c:
        stream = c.streams.audio[0]
        assert (stream.rate, stream.channels) == (16000, 1)


def test_missing_espeak_raises_clearly_and_audio_off_skips_narration(tmp_path, monkeypatch):
    monkeypatch.setattr(videos.shutil, "which", lambda name: None)
    with pytest.raises(SpeechUnavailableError, match="apt-get install -y espeak-ng"):
        make_video_sample(0, tmp_path)
    s = make_video_sample(0, tmp_path, audio=False, question="narration")
    assert s.truth["narration"] is None and "narrat" not in s.question
    with av.open(s.video_path) as c:
        assert len(c.streams.audio) == 0 and len(c.streams.video) == 1
