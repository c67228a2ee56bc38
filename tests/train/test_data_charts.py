"""Chart generator: reproducibility, drawn marks that match the values, and answers that follow from them."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
from matplotlib.colors import to_rgb

from nanovl.train.data.charts import ChartSpec, draw_chart, make_chart_sample, random_chart, render_chart
from nanovl.train.data.common import format_number


def _bar_heights(image, color: str) -> list[int]:
    """Pixel height of each bar, left to right, found by the bar colour alone."""
    rgb = np.asarray(image, dtype=np.int32)
    target = np.array(to_rgb(color)) * 255
    mask = np.abs(rgb - target).sum(axis=2) < 30
    cols = np.flatnonzero(mask.any(axis=0))
    runs = np.split(cols, np.flatnonzero(np.diff(cols) > 1) + 1)
    return [int(mask[:, run[len(run) // 2]].sum()) for run in runs]


def test_same_seed_same_sample_and_different_seed_differs():
    a, b, c = make_chart_sample(5), make_chart_sample(5), make_chart_sample(6)
    assert a.images[0].tobytes() == b.images[0].tobytes()
    assert (a.target, a.truth) == (b.target, b.truth)
    assert a.images[0].tobytes() != c.images[0].tobytes() and a.truth != c.truth


@pytest.mark.parametrize("seed", range(6))
def test_bar_heights_in_pixels_match_values(seed):
    spec = random_chart(random.Random(seed), kind="bar")
    heights = _bar_heights(render_chart(spec), spec.color)
    assert len(heights) == len(spec.values)
    values = np.array(spec.values)
    # bars start at 0, so pixel height = k * value with one k for the whole chart
    k = np.dot(heights, values) / np.dot(values, values)
    assert np.abs(np.array(heights) - k * values).max() <= 2.0, (heights, spec.values)


def test_bar_pixel_check_catches_a_wrong_value():
    spec = random_chart(random.Random(1), kind="bar")
    wrong = ChartSpec(spec.kind, spec.title, spec.labels, (spec.values[0] * 1.5,) + spec.values[1:],
                      spec.decimals, spec.color)
    heights = np.array(_bar_heights(render_chart(wrong), spec.color))
    values = np.array(spec.values)
    k = np.dot(heights, values) / np.dot(values, values)
    assert np.abs(heights - k * values).max() > 2.0


def test_line_and_pie_artists_carry_the_values():
    line = random_chart(random.Random(2), kind="line")
    ax = draw_chart(line).axes[0]
    assert list(ax.lines[0].get_ydata()) == list(line.values)
    pie = random_chart(random.Random(3), kind="pie")
    wedges = draw_chart(pie).axes[0].patches
    spans = np.array([(w.theta2 - w.theta1) % 360 for w in wedges])
    np.testing.assert_allclose(spans / 360, np.array(pie.values) / sum(pie.values), atol=1e-6)


def test_value_labels_are_printed_on_the_chart():
    for kind in ("bar", "line", "pie"):
        spec = random_chart(random.Random(4), kind=kind)
        texts = {t.get_text() for t in draw_chart(spec).axes[0].texts}
        assert {spec.value_text(v) for v in spec.values} <= texts


def test_answers_follow_from_the_values():
    for seed in range(8):
        spec_truth = make_chart_sample(seed, question="json").truth
        labels, values = spec_truth["labels"], spec_truth["values"]
        assert 3 <= len(labels) <= 5 and len(set(values)) == len(values)
        data = json.loads(make_chart_sample(seed, question="json").target)
        assert list(data) == labels and list(data.values()) == pytest.approx(values)
        assert make_chart_sample(seed, question="largest").target == labels[int(np.argmax(values))]
        assert make_chart_sample(seed, question="smallest").target == labels[int(np.argmin(values))]
        s = make_chart_sample(seed, question="value")
        assert float(s.target) == values[labels.index(s.truth["label"])]
        assert s.question == f"What is the value of {s.truth['label']}?"


def test_values_are_integers_or_one_decimal():
    for seed in range(30):
        spec = random_chart(random.Random(seed))
        assert all(round(v, spec.decimals) == v for v in spec.values)
        texts = [spec.value_text(v) for v in spec.values]
        assert all(("." in t) == bool(spec.decimals) for t in texts)
        assert all(float(t) == v for t, v in zip(texts, spec.values))


def test_a_traced_value_answer_copies_its_reading_of_every_label():
    for seed in range(6):
        plain = make_chart_sample(seed, question="value")
        s = make_chart_sample(seed, question="value", thinking=True)
        labels, values = s.truth["labels"], s.truth["values"]
        # the trace reads the whole chart in order, then the answer is the asked label's line
        assert s.thinking and s.reasoning.split("\n") == [f"{k}: {plain_text}" for k, plain_text in
                                                          zip(labels, [format_number(v, s.truth["decimals"])
                                                                       for v in values])]
        assert s.target == f"<think>\n{s.reasoning}\n</think>\n{plain.target}"
        assert f"{s.truth['label']}: {plain.target}" in s.reasoning.split("\n")
        # same image and question as without the trace
        assert s.question == plain.question and s.images[0].tobytes() == plain.images[0].tobytes()
    # other questions carry no trace: their thinking is the caller's empty thought
    j = make_chart_sample(3, question="json", thinking=True)
    assert not j.thinking and j.reasoning is None and j.target == make_chart_sample(3, question="json").target


def test_a_traced_chart_trains_its_trace_and_an_untraced_one_an_empty_thought():
    from nanovl.train.samples import TrainSample, completion_text

    s = make_chart_sample(2, question="value", thinking=True)
    assert completion_text(TrainSample(s, True)) == f"{s.reasoning}\n</think>\n{s.target.rsplit(chr(10), 1)[-1]}"
    j = make_chart_sample(2, question="json", thinking=True)
    assert completion_text(TrainSample(j, True)) == "\n</think>\n" + j.target
    assert completion_text(TrainSample(make_chart_sample(2, question="value"), False)) == s.target.rsplit("\n", 1)[-1]
