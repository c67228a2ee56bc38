"""Arithmetic drills: text-only, the items of a random invoice, and the sum trace the image task trains.

    pytest tests/train/test_data_arithmetic.py -q
"""
from __future__ import annotations

import re
from decimal import Decimal

from nanovl.train.data.arithmetic import QUESTION, make_arithmetic_sample
from nanovl.train.data.reasoning import make_reasoning_sample


def test_same_seed_same_drill_and_no_image():
    a, b = make_arithmetic_sample(11), make_arithmetic_sample(11)
    assert a.target == b.target and a.messages == b.messages
    assert a.images == [] and [p["type"] for p in a.messages[0]["content"]] == ["text"]
    assert a.thinking and a.question.endswith(QUESTION)


def test_trace_multiplies_and_adds_the_listed_items():
    for seed in range(40):
        s = make_arithmetic_sample(seed)
        listed = re.findall(r"^(\w+): (\d+) at (\d+\.\d\d)$", s.question, flags=re.M)
        lines = s.reasoning.split("\n")
        assert len(listed) == len(lines) == len(s.truth["items"]) >= 2
        running = Decimal(0)
        for (name, qty, price), line, product in zip(listed, lines, s.truth["products"]):
            amount = int(qty) * Decimal(price)
            running += amount
            assert line == f"{name}: {qty} x {price} = {amount:.2f}; sum = {running:.2f}"
            assert product == f"{qty} x {price} = {amount:.2f}"  # what the eval looks for in a trace
        assert s.truth["answer"] == f"{running:.2f}" and s.target.endswith("</think>\n" + s.truth["answer"])


def test_trace_format_is_the_image_tasks():
    # the drill teaches the very lines the reasoning task's trace writes
    pic = make_reasoning_sample(5, thinking=True, question="sum", augment=False)
    pattern = r"^\w+: \d+ x \d+\.\d\d = \d+\.\d\d; sum = \d+\.\d\d$"
    assert all(re.match(pattern, line) for line in pic.reasoning.split("\n"))
    assert all(re.match(pattern, line) for line in make_arithmetic_sample(5).reasoning.split("\n"))


def test_drill_trains_its_trace_as_the_thought():
    # the template's generation prompt already opened "<think>\n": the completion is the trace, then
    # the answer; not an empty thought followed by a second "<think>" (the first wiring's bug)
    from nanovl.train.samples import TrainSample, completion_text

    s = make_arithmetic_sample(2)
    text = completion_text(TrainSample(s, True))
    assert text == f"{s.reasoning}\n</think>\n{s.truth['answer']}"
    assert "<think>" not in text


def test_stepwise_drill_has_the_same_items_and_answer():
    for seed in range(20):
        old, new = make_arithmetic_sample(seed), make_arithmetic_sample(seed, stepwise=True)
        assert new.question == old.question and new.truth["answer"] == old.truth["answer"]
        assert new.target.endswith("</think>\n" + old.truth["answer"])
        # a product is the whole worked multiplication, steps included, ending in the old product's amount
        for p_old, p_new in zip(old.truth["products"], new.truth["products"], strict=True):
            head, amount = p_old.split(" = ")
            assert p_new.startswith(head + " = ") and p_new.endswith(" = " + amount) and p_new in new.reasoning
