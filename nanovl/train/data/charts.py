"""Synthetic bar, line and pie charts drawn with matplotlib (Agg), with every value printed on the chart.

`make_chart_sample(seed)` is the task entry; values are distinct integers or one-decimal numbers.
With thinking on, a value question is answered after a trace that reads every label and its value in
chart order ("Jan: 12" per line): v7 answered 14 of its 28 chart misses with a value the chart prints
for another label, and read whole charts right (the JSON question) more often than single values.
"""
from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .common import Sample, chat, format_number, to_json
from .reasoning import format_target

DEFAULT_SIZE = (256, 256)
KINDS = ("bar", "line", "pie")
QUESTION_KINDS = ("value", "largest", "smallest", "json")
_QUESTION_WEIGHTS = (4, 2, 1, 2)
_THEMES = (
    (("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), True),
    (("North", "South", "East", "West"), False),
    (("Apple", "Pear", "Plum", "Kiwi", "Lime", "Fig"), False),
    (("A", "B", "C", "D", "E"), False),
    (("Pens", "Ink", "Tape", "Glue", "Cups"), False),
    (("Mon", "Tue", "Wed", "Thu", "Fri"), True),
)
_TITLES = ("Sales", "Visitors", "Orders", "Score", "Votes", "Units")
# saturated colours that stay apart from the black text and the grey grid
PALETTE = ("#1f5fbf", "#d62728", "#2a9d4a", "#7b3fb0", "#e07b00")


@dataclass(frozen=True)
class ChartSpec:
    """What a chart shows; `color` is the bar/line colour (pie slices use PALETTE in order)."""

    kind: str
    title: str
    labels: tuple[str, ...]
    values: tuple[float, ...]
    decimals: int
    color: str

    def value_text(self, value: float) -> str:
        """A value exactly as printed on the chart."""
        return format_number(value, self.decimals)


def random_chart(rng: random.Random, *, kind: str | None = None, labels: tuple[str, ...] | None = None) -> ChartSpec:
    """Draw a chart spec: 3-5 categories with distinct values (so largest/smallest never tie)."""
    kind = kind or rng.choice(KINDS)
    if labels is None:
        words, ordered = rng.choice(_THEMES)
        n = rng.randint(3, min(5, len(words)))
        # ordered themes (months, weekdays) keep a consecutive run; others take any subset in order
        if ordered:
            start = rng.randint(0, len(words) - n)
            labels = words[start:start + n]
        else:
            labels = tuple(sorted(rng.sample(words, n), key=words.index))
    decimals = 1 if rng.random() < 0.3 else 0
    low, high = (5, 40) if kind == "pie" else (5, 95)
    if decimals:
        values = tuple(v / 10 for v in rng.sample(range(low * 10, high * 10 + 1), len(labels)))
    else:
        values = tuple(float(v) for v in rng.sample(range(low, high + 1), len(labels)))
    return ChartSpec(kind, rng.choice(_TITLES), tuple(labels), values, decimals, rng.choice(PALETTE))


def _draw_bar(ax, spec: ChartSpec) -> None:
    x = np.arange(len(spec.labels))
    ax.bar(x, spec.values, width=0.6, color=spec.color)
    for xi, v in zip(x, spec.values):
        ax.text(xi, v, spec.value_text(v), ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.set_xticks(x, spec.labels)
    ax.set_ylim(0, max(spec.values) * 1.2)


def _draw_line(ax, spec: ChartSpec) -> None:
    x = np.arange(len(spec.labels))
    ax.plot(x, spec.values, color=spec.color, linewidth=2, marker="o", markersize=6)
    for xi, v in zip(x, spec.values):
        ax.annotate(spec.value_text(v), (xi, v), xytext=(0, 5), textcoords="offset points",
                    ha="center", va="bottom", fontsize=10, fontweight="bold")
    ax.set_xticks(x, spec.labels)
    ax.set_xlim(-0.5, len(x) - 0.5)
    ax.set_ylim(0, max(spec.values) * 1.25)


def _draw_pie(ax, spec: ChartSpec) -> None:
    wedges, _ = ax.pie(spec.values, labels=spec.labels, colors=PALETTE[:len(spec.values)], startangle=90,
                       counterclock=False, labeldistance=1.12, wedgeprops={"edgecolor": "white"},
                       textprops={"fontsize": 10})
    for wedge, v in zip(wedges, spec.values):
        mid = math.radians((wedge.theta1 + wedge.theta2) / 2)
        ax.text(0.62 * math.cos(mid), 0.62 * math.sin(mid), spec.value_text(v), ha="center", va="center",
                color="white", fontsize=10, fontweight="bold")
    ax.set_aspect("equal")


def draw_chart(spec: ChartSpec, *, size: tuple[int, int] = DEFAULT_SIZE, scale: int = 1):
    """Build the matplotlib Figure for `spec` (not yet rasterised), so tests can inspect its artists.

    Args:
        size: (width, height) in pixels at scale 1.
        scale: integer upscale; fonts grow with it.
    Returns:
        matplotlib.figure.Figure with one Axes.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if spec.kind not in KINDS:
        raise ValueError(f"chart kind must be one of {KINDS}, got {spec.kind!r}")
    # a bare Figure (not pyplot) keeps no global state, so charts are reproducible and never leak
    fig = Figure(figsize=(size[0] / 100, size[1] / 100), dpi=100 * scale, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    {"bar": _draw_bar, "line": _draw_line, "pie": _draw_pie}[spec.kind](ax, spec)
    ax.set_title(spec.title, fontsize=11, fontweight="bold")
    if spec.kind != "pie":
        ax.tick_params(labelsize=10)
        ax.yaxis.grid(True, color="#cccccc", linewidth=0.8)
        ax.set_axisbelow(True)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout(pad=0.4)
    return fig


def render_chart(spec: ChartSpec, *, size: tuple[int, int] = DEFAULT_SIZE, scale: int = 1) -> Image.Image:
    """Rasterise `spec` to an RGB image of (width * scale, height * scale)."""
    fig = draw_chart(spec, size=size, scale=scale)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return Image.fromarray(np.ascontiguousarray(rgba[..., :3]), mode="RGB")


def chart_data(spec: ChartSpec) -> dict[str, float | int]:
    """Label -> value in chart order; integers stay ints so the JSON reads "42", not "42.0"."""
    return {k: (int(v) if spec.decimals == 0 else v) for k, v in zip(spec.labels, spec.values)}


def chart_question(spec: ChartSpec, kind: str, rng: random.Random) -> tuple[str, str, dict]:
    """(question, target, extra truth) for one question kind about `spec`."""
    if kind == "value":
        i = rng.randrange(len(spec.labels))
        return f"What is the value of {spec.labels[i]}?", spec.value_text(spec.values[i]), {"label": spec.labels[i]}
    if kind == "largest":
        return "Which category is largest?", spec.labels[int(np.argmax(spec.values))], {}
    if kind == "smallest":
        return "Which category is smallest?", spec.labels[int(np.argmin(spec.values))], {}
    if kind == "json":
        return "Extract the chart data as JSON.", to_json(chart_data(spec)), {}
    raise ValueError(f"question kind must be one of {QUESTION_KINDS}, got {kind!r}")


def chart_trace(spec: ChartSpec) -> str:
    """The readings a traced value answer copies from: one "label: value" line per category, in order."""
    return "\n".join(f"{label}: {spec.value_text(v)}" for label, v in zip(spec.labels, spec.values))


def chart_truth(spec: ChartSpec) -> dict:
    """All ground truth of one chart."""
    return {"kind": spec.kind, "title": spec.title, "labels": list(spec.labels), "values": list(spec.values),
            "decimals": spec.decimals, "color": spec.color}


def make_chart_sample(seed: int, *, size: tuple[int, int] = DEFAULT_SIZE, scale: int = 1,
                      kind: str | None = None, question: str | None = None, thinking: bool = False) -> Sample:
    """One chart image with a value, largest/smallest or JSON question.

    Args:
        seed: reproduces the sample exactly.
        size: image size at scale 1.
        scale: render upscale for large samples.
        kind: "bar", "line" or "pie"; drawn from the seed when None.
        question: one of QUESTION_KINDS; drawn from the seed when None.
        thinking: a value question's target opens with `chart_trace` in <think> (other questions have
            no trace; their thinking is the caller's empty thought). Image and answer do not change.
    """
    return make_chart_samples(seed, [(question, thinking)], size=size, scale=scale, kind=kind)[0]


def make_chart_samples(seed: int, asks: Sequence[tuple[str | None, bool]], *, size: tuple[int, int] = DEFAULT_SIZE,
                       scale: int = 1, kind: str | None = None) -> list[Sample]:
    """`make_chart_sample` once per (question, thinking) in `asks`, all of one chart drawn once.

    matplotlib is most of a chart sample's cost, so training may ask a chart several questions; the
    first sample is exactly `make_chart_sample(seed, question=asks[0][0], thinking=asks[0][1])`.
    """
    rng = random.Random(seed)
    spec = random_chart(rng, kind=kind)
    drawn = rng.choices(QUESTION_KINDS, weights=_QUESTION_WEIGHTS)[0]
    questions = []
    for question, thinking in asks:
        qkind = question or drawn
        # each question's own draws (a value question's label) follow the last one's
        questions.append((qkind, thinking, *chart_question(spec, qkind, rng)))
    image = render_chart(spec, size=size, scale=scale)
    truth = chart_truth(spec)
    out = []
    for qkind, thinking, text, target, extra in questions:
        trace = chart_trace(spec) if thinking and qkind == "value" else None
        if trace is not None:
            target = format_target(trace, target, True)
        out.append(Sample("chart", chat(text, target, num_images=1), target,
                          truth | extra | {"question_kind": qkind}, images=[image],
                          thinking=trace is not None, reasoning=trace, seed=seed))
    return out
