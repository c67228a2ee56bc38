"""Follow-up questions on a saved video prefix: same answer as recomputing, without recomputing the video.

Runs on the random tiny model: the check is token-for-token equality, which does not need
meaningful answers.
"""
from __future__ import annotations

import random
from dataclasses import replace

import pytest

from nanovl.apps.video import VideoOptions, VideoSession, describe_timing, parse_bullets
from nanovl.train.data.videos import random_script, write_video

QUESTIONS = ("What is shown first?", "Which colour moves?")


@pytest.fixture(scope="module")
def silent_video(tmp_path_factory):
    script = replace(random_script(random.Random(3)), duration=6.0)
    path = tmp_path_factory.mktemp("followup") / "clip.mp4"
    write_video(script, path)
    return str(path)


def _options(**kw) -> VideoOptions:
    return VideoOptions(fps=2.0, max_tokens=24, use_audio=False, summary="free", **kw)


def test_followup_from_saved_prefix_equals_scratch(random_llm, silent_video):
    reused = VideoSession(random_llm, silent_video, _options(reuse_prefix=True), progress=False)
    scratch = VideoSession(random_llm, silent_video, _options(reuse_prefix=False), progress=False)
    _, first = reused.summarize(3)
    _, first_scratch = scratch.summarize(3)
    assert first.outputs[0].token_ids == first_scratch.outputs[0].token_ids
    # the first question computed the prefix; nothing was cached yet
    assert first.prefix_seconds > 0 and first.num_cached_tokens > 0
    # the summary's own question stays out of the conversation the follow-ups carry
    assert all(seg.history == [] for seg in reused.segments)
    prefix_tokens = reused.segments[0].prefix.num_tokens
    for q in QUESTIONS:
        a, b = reused.ask(q), scratch.ask(q)
        assert a.outputs[0].token_ids == b.outputs[0].token_ids
        assert a.text == b.text
        assert a.prefix_seconds == 0.0
        assert a.num_cached_tokens == prefix_tokens and b.num_cached_tokens == 0
        # the follow-up prompt carries the history, so it is longer than the saved video part
        assert a.outputs[0].num_prompt_tokens > prefix_tokens
        line = describe_timing(a, reused)
        assert "reusing the saved video prefix" in line and f"{prefix_tokens} tokens" in line


def test_history_is_dropped_when_it_does_not_fit(random_llm, silent_video):
    session = VideoSession(random_llm, silent_video, _options(max_context=1200), progress=False)
    seg = session.segments[0]
    seg.history = [(f"question {i} " + "word " * 40, "answer " * 40) for i in range(6)]
    msgs = session.messages(seg, "last?", 24)
    kept = [m for m in msgs if m["role"] == "assistant"]
    assert 0 < len(kept) < 6
    assert msgs[-1]["content"] == "last?" and msgs[0]["content"][0] is seg.part
    assert random_llm.count_tokens(msgs) + 24 <= 1200


@pytest.mark.parametrize("text,want", [
    ("- a\n- b\n- c", ["a", "b", "c"]),
    ("Intro\n1. one\n2) two\n* three", ["one", "two", "three"]),
    ("plain line\nanother", ["plain line", "another"]),
    ("", []),
])
def test_parse_bullets(text, want):
    assert parse_bullets(text) == want
    assert parse_bullets(text, 2) == want[:2]
