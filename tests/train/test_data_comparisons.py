"""Comparison traces and drills: aligned numbers, the first differing digit decides, and the answer agrees."""
from __future__ import annotations

import pytest

from nanovl.train.data.comparisons import (align, comparison_lines, make_comparison_sample, verdict,
                                           verdict_of_trace)
from nanovl.train.data.multi_image import make_multi_image_sample


@pytest.mark.parametrize("a, b, want", [
    ("73.4", "8", ("73.4", "08.0")),
    ("412.50", "398.00", ("412.50", "398.00")),
    ("9", "84", ("09", "84")),
    ("726.71", "3058.13", ("0726.71", "3058.13")),
    ("39", "36.87", ("39.00", "36.87")),
])
def test_align_puts_equal_place_values_under_each_other(a, b, want):
    assert align(a, b) == want
    x, y = want
    assert float(x) == float(a) and float(y) == float(b) and len(x) == len(y)


def test_first_difference_decides_the_larger():
    assert comparison_lines("180.14", "256.00") == "aligned: 180.14 / 256.00\nfirst difference: 1 / 2"
    assert comparison_lines("1280.39", "1279.45").endswith("first difference: 8 / 7")
    with pytest.raises(ValueError, match="equal"):
        comparison_lines("5.0", "5")


def _check(trace: str, answer: str, larger: bool):
    lines = trace.split("\n")
    x, y = lines[2].removeprefix("aligned: ").split(" / ")
    p, q = lines[3].removeprefix("first difference: ").split(" / ")
    first_larger = p > q
    assert answer == ("first" if first_larger == larger else "second")
    assert verdict_of_trace(trace, larger) == answer
    assert float(x) == float(lines[0].rsplit(": ", 1)[1]) and float(y) == float(lines[1].rsplit(": ", 1)[1])


def test_drills_answer_what_their_trace_says():
    kinds = set()
    for seed in range(300):
        s = make_comparison_sample(seed)
        assert s.thinking and s.target.endswith("\n</think>\n" + s.truth["answer"])
        _check(s.reasoning, s.truth["answer"], s.truth["compare"] == "larger")
        a, b = s.truth["values"]
        assert s.truth["answer"] == verdict(a, b, s.truth["compare"] == "larger")
        kinds.add((s.truth["pair"], s.truth["compare"]))
    assert kinds == {("invoices", "larger"), ("invoices", "smaller"), ("charts", "larger")}
    assert make_comparison_sample(7).target == make_comparison_sample(7).target


def test_pair_traces_end_with_the_comparison():
    for seed in range(6):
        s = make_multi_image_sample(seed, thinking=True)
        _check(s.reasoning, s.truth["answer"], s.truth.get("compare", "larger") == "larger")


def test_verdict_of_trace_needs_two_numbers():
    assert verdict_of_trace("first total: 12.00\nsecond total: 9.50") == "first"
    assert verdict_of_trace("first total: 12.00\nsecond total: 9.50", larger=False) == "second"
    assert verdict_of_trace("first total: twelve\nsecond total: 9.50") is None
    assert verdict_of_trace("first total: 12.00") is None
    assert verdict_of_trace("first A: 5\nsecond A: 5.0") is None
