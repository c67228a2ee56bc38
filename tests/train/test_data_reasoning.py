"""Document arithmetic: traces that add up, the model's <think> format, and no trace under /no_think."""
from __future__ import annotations

import re

from nanovl.train.data.reasoning import NO_THINK, make_reasoning_sample, prompt_split

LINE = re.compile(r"^(\w+): (\d+) x (\d+\.\d\d) = (\d+\.\d\d); sum = (\d+\.\d\d)$")


def _cents(text: str) -> int:
    whole, frac = text.split(".")
    return int(whole) * 100 + int(frac)


def test_thinking_on_trace_lists_amounts_and_running_sum():
    for seed in range(12):
        s = make_reasoning_sample(seed, thinking=True, question="sum")
        assert NO_THINK not in s.question and s.thinking
        head, answer = s.target.rsplit("\n</think>\n", 1)
        assert head.startswith("<think>\n") and head[len("<think>\n"):] == s.reasoning
        running = 0
        lines = s.reasoning.split("\n")
        assert len(lines) == len(s.truth["items"])
        for line, item in zip(lines, s.truth["items"]):
            desc, qty, price, amount, total = LINE.match(line).groups()
            expected = (item["description"], item["qty"], round(item["unit_price"] * 100))
            assert (desc, int(qty), _cents(price)) == expected
            assert _cents(amount) == int(qty) * _cents(price)
            running += _cents(amount)
            assert _cents(total) == running
        assert _cents(answer) == running == s.truth["total_cents"]


def test_thinking_off_has_no_trace():
    for seed in range(12):
        s = make_reasoning_sample(seed, thinking=False)
        assert s.question.endswith(NO_THINK) and not s.thinking and s.reasoning is None
        assert "<think>" not in s.target and "</think>" not in s.target
        assert s.target == s.truth["answer"]


def test_units_question_counts_quantities():
    s = make_reasoning_sample(5, thinking=True, question="units")
    assert s.target.endswith("\n" + str(sum(i["qty"] for i in s.truth["items"])))


def test_document_hides_the_total_and_seed_is_reproducible():
    a, b, c = make_reasoning_sample(9), make_reasoning_sample(9), make_reasoning_sample(10)
    assert a.truth["printed_total"] is None
    assert a.images[0].tobytes() == b.images[0].tobytes() and a.target == b.target
    assert a.images[0].tobytes() != c.images[0].tobytes()
    # forcing the mode changes the text only, never the picture
    on, off = make_reasoning_sample(9, thinking=True), make_reasoning_sample(9, thinking=False)
    assert on.images[0].tobytes() == off.images[0].tobytes()
    assert sum(s.thinking for s in map(make_reasoning_sample, range(20))) not in (0, 20)


def test_prompt_split_matches_the_template_prompt():
    on, off = make_reasoning_sample(2, thinking=True), make_reasoning_sample(2, thinking=False)
    prefix, completion = prompt_split(on.target, True)
    assert prefix + completion == on.target and completion.startswith(on.reasoning)
    assert prompt_split(off.target, False) == ("<think></think>", off.target)
