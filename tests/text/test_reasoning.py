"""Reasoning: the /think switch, reasoning/answer split (whole and streamed), thinking budget.

Run: pytest tests/text/test_reasoning.py
"""
from __future__ import annotations

import random

import pytest

from nanovl.engine.detokenizer import IncrementalDetokenizer
from nanovl.reasoning import ReasoningStream, ThinkingBudget, resolve_thinking, split_reasoning
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return Tokenizer.from_dir(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


def _msgs(*pairs):
    return [{"role": r, "content": c} for r, c in pairs]


@pytest.mark.parametrize("messages,explicit,expected", [
    (_msgs(("user", "hi")), None, True),
    (_msgs(("system", "x /no_think"), ("user", "hi")), None, False),
    (_msgs(("system", "/no_think"), ("user", "hi /think")), None, True),
    (_msgs(("user", "/think"), ("assistant", "/no_think"), ("user", "more")), None, True),
    (_msgs(("user", "/think"), ("user", "ok /no_think")), None, False),
    (_msgs(("user", "hi /no_think")), True, True),
    (_msgs(("user", "hi /think")), False, False),
    ([{"role": "user", "content": [{"type": "image", "image": "a"}, {"type": "text", "text": "/no_think"}]}],
     None, False),
], ids=["default", "system_off", "last_wins", "assistant_ignored", "user_off", "explicit_on", "explicit_off",
        "parts"])
def test_resolve_thinking(messages, explicit, expected):
    assert resolve_thinking(messages, explicit) is expected


@pytest.mark.parametrize("text,enabled,expected", [
    ("Let me see.\n</think>\nThe answer is 4.", True, ("Let me see.", "The answer is 4.")),
    ("<think>\nHmm.\n</think>Yes", True, ("Hmm.", "Yes")),
    ("still thinking about it", True, ("still thinking about it", "")),
    ("</think>Direct", True, ("", "Direct")),
    ("Just the answer.\n", False, (None, "Just the answer.")),
    ("a</think>b</think>c", True, ("a", "b</think>c")),
], ids=["closed", "with_open_tag", "unterminated", "empty_thought", "disabled", "second_close_is_answer"])
def test_split_reasoning(text, enabled, expected):
    assert split_reasoning(text, thinking_enabled=enabled) == expected


@pytest.mark.parametrize("enabled", [True, False])
def test_reasoning_stream_matches_split_for_any_chunking(enabled):
    rng = random.Random(3)
    texts = ["<think>\nStep 1.\nStep 2.  \n</think>\n\nFinal answer  \n", "thinking... < /think> not </thi",
             "a</think>b", "   \n</think>", "<thi", "x \n</think> y </think> z"]
    for text in texts:
        for _ in range(20):
            stream = ReasoningStream(thinking_enabled=enabled)
            cuts = sorted(rng.sample(range(1, len(text)), k=min(4, len(text) - 1)))
            pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
            got_r, got_a = "", ""
            for piece in pieces + [None]:
                r, a = stream.finish() if piece is None else stream.feed(piece)
                got_r, got_a = got_r + r, got_a + a
            reasoning, answer = split_reasoning(text, thinking_enabled=enabled)
            assert (got_r, got_a) == (reasoning or "", answer), (text, pieces)


def _generate(budget, tok, model_tokens, *, one_at_a_time=True):
    """Engine-like loop: forced tokens replace sampling; `model_tokens` is what the model would say."""
    generated, source = [], iter(model_tokens)
    while len(generated) < len(model_tokens):
        forced = budget.forced_tokens(generated)
        if forced:
            generated.extend(forced[:1] if one_at_a_time else forced)
        else:
            generated.append(next(source))
    return generated


@pytest.mark.parametrize("one_at_a_time", [True, False], ids=["one_per_step", "all_at_once"])
@pytest.mark.parametrize("budget_n", [0, 1, 7, 30])
def test_thinking_budget_caps_reasoning_exactly(tok, budget_n, one_at_a_time):
    words = tok.encode(" alpha beta gamma delta epsilon" * 20)
    model = words[:60] + tok.encode("\n</think>\nThe answer.")
    budget = ThinkingBudget.from_tokenizer(budget_n, tok)
    close = tok.encode("\n</think>\n")
    out = _generate(budget, tok, model, one_at_a_time=one_at_a_time)
    assert out[:budget_n] == words[:budget_n]
    assert out[budget_n:budget_n + len(close)] == close
    assert budget.num_reasoning_tokens == budget_n and budget.reasoning_ended
    # Part K #8: the split still finds both parts, whole and streamed
    text = tok.decode(out, skip_special_tokens=True)
    reasoning, answer = split_reasoning(text, thinking_enabled=True)
    assert reasoning == tok.decode(words[:budget_n]).strip()
    assert answer == tok.decode(out[budget_n + len(close):]).strip() and answer
    detok, stream, got = IncrementalDetokenizer(tok), ReasoningStream(thinking_enabled=True), ["", ""]
    for token_id in out:
        r, a = stream.feed(detok.add(token_id))
        got = [got[0] + r, got[1] + a]
    r, a = stream.feed(detok.flush())
    r2, a2 = stream.finish()
    assert [got[0] + r + r2, got[1] + a + a2] == [reasoning, answer]


def test_thinking_budget_leaves_early_close_alone(tok):
    model = tok.encode("short\n</think>\nDone. More words follow here.")
    budget = ThinkingBudget.from_tokenizer(20, tok)
    out = _generate(budget, tok, model)
    assert out == model
    assert budget.num_reasoning_tokens == model.index(tok.think_end_token_id) and budget.forced_tokens(out) is None


def test_thinking_budget_multi_token_end_marker():
    # a tokenizer without a single "</think>" id: end = [7, 8], close = [5, 7, 8, 5]
    budget = ThinkingBudget(3, [7, 8], close_ids=[5, 7, 8, 5])
    out = _generate(budget, None, [1, 2, 3, 4, 4, 4, 4, 4, 4])
    assert out == [1, 2, 3, 5, 7, 8, 5, 4, 4]
    early = ThinkingBudget(5, [7, 8], close_ids=[7, 8])
    assert _generate(early, None, [1, 7, 8, 2, 3, 4, 4, 4]) == [1, 7, 8, 2, 3, 4, 4, 4]
    assert early.num_reasoning_tokens == 1


def test_thinking_budget_validation(tok):
    with pytest.raises(ValueError, match="close_text"):
        ThinkingBudget.from_tokenizer(3, tok, close_text="\nDone thinking.\n")
    with pytest.raises(ValueError, match="thinking_budget"):
        ThinkingBudget(-1, [3])
    with pytest.raises(ValueError, match="end_ids"):
        ThinkingBudget(4, [])
    with pytest.raises(ValueError, match="contain"):
        ThinkingBudget(4, [3], close_ids=[5, 6])
