"""Image-pair comparisons: the first/second answer follows from the truth and never ties."""
from __future__ import annotations

import pytest

from nanovl.train.data.multi_image import make_multi_image_sample


def test_same_seed_same_sample_and_different_seed_differs():
    a, b, c = (make_multi_image_sample(s) for s in (2, 2, 3))
    assert [i.tobytes() for i in a.images] == [i.tobytes() for i in b.images]
    assert (a.target, a.truth) == (b.target, b.truth)
    assert [i.tobytes() for i in a.images] != [i.tobytes() for i in c.images]


def test_invoice_pair_answer_matches_totals():
    answers = set()
    for seed in range(16):
        s = make_multi_image_sample(seed, pair="invoices")
        first, second = s.truth["totals"]
        assert abs(first - second) >= 1.0
        assert [d["total"] for d in s.truth["documents"]] == [first, second]
        assert s.truth["documents"][0]["currency"] == s.truth["documents"][1]["currency"]
        larger_first = first > second
        expected = "first" if larger_first == (s.truth["compare"] == "larger") else "second"
        assert s.target == expected and s.truth["compare"] in s.question
        answers.add(s.target)
    assert answers == {"first", "second"}


def test_chart_pair_answer_matches_values():
    answers = set()
    for seed in range(8):
        s = make_multi_image_sample(seed, pair="charts")
        charts = s.truth["charts"]
        i = charts[0]["labels"].index(s.truth["label"])
        assert charts[0]["labels"] == charts[1]["labels"]
        a, b = charts[0]["values"][i], charts[1]["values"][i]
        assert a != b and s.target == ("first" if a > b else "second")
        answers.add(s.target)
    assert answers == {"first", "second"}


def test_two_image_markers_and_two_images():
    s = make_multi_image_sample(0)
    assert [p["type"] for p in s.messages[0]["content"]] == ["image", "image", "text"]
    assert len(s.images) == 2
    with pytest.raises(ValueError):
        make_multi_image_sample(0, pair="videos")


@pytest.mark.parametrize("pair", ["invoices", "charts"])
def test_thinking_trace_reads_the_two_compared_numbers_then_answers(pair):
    for seed in range(6):
        plain = make_multi_image_sample(seed, pair=pair)
        s = make_multi_image_sample(seed, pair=pair, thinking=True)
        # the same images and answer; only the target gains the trace
        assert [i.tobytes() for i in s.images] == [i.tobytes() for i in plain.images]
        assert s.truth == plain.truth and s.thinking and not plain.thinking
        head, answer = s.target.split("\n</think>\n")
        assert head.startswith("<think>\n") and answer == plain.target == s.truth["answer"]
        # the two readings, then the comparison (tests/train/test_data_comparisons.py checks those lines)
        first, second, aligned, difference = head[len("<think>\n"):].split("\n")
        assert aligned.startswith("aligned: ") and difference.startswith("first difference: ")
        if pair == "invoices":
            a, b = s.truth["totals"]
            assert (first, second) == (f"first total: {a:.2f}", f"second total: {b:.2f}")
        else:
            label, charts = s.truth["label"], s.truth["charts"]
            i = charts[0]["labels"].index(label)
            values = [float(line.rsplit(": ", 1)[1]) for line in (first, second)]
            assert first.startswith(f"first {label}: ") and second.startswith(f"second {label}: ")
            assert values == [charts[0]["values"][i], charts[1]["values"][i]]
