"""Two-image comparisons: which of two invoices has the larger total, which of two charts shows more.

Answers are "first" or "second"; pairs are redrawn until they differ, so there are never ties.
"""
from __future__ import annotations

import random

from .charts import chart_truth, random_chart, render_chart
from .comparisons import ORDINALS, comparison_lines
from .common import Sample, augment, chat
from .documents import DEFAULT_SIZE, invoice_truth, money, random_invoice, random_style, render_invoice
from .reasoning import format_target

PAIR_KINDS = ("invoices", "charts")


def _invoice_pair(rng: random.Random, size: tuple[int, int], scale: int) -> tuple[list, str, str, dict]:
    first = random_invoice(rng)
    # same currency, so "larger total" compares numbers in one unit; >= 1.00 apart, so no ties
    second = random_invoice(rng, currency=first.currency)
    while abs(second.total_cents - first.total_cents) < 100:
        second = random_invoice(rng, currency=first.currency)
    styles = [random_style(rng), random_style(rng)]
    images = [augment(render_invoice(inv, st, size=size, scale=scale), rng)
              for inv, st in zip((first, second), styles)]
    noun = first.kind if first.kind == second.kind else "document"
    larger = rng.random() < 0.7
    totals = [first.total_cents, second.total_cents]
    pick = max if larger else min
    answer = ORDINALS[totals.index(pick(totals))]
    word = "larger" if larger else "smaller"
    question = f"Which {noun} has the {word} total, the first or the second?"
    truth = {"pair": "invoices", "totals": [t / 100 for t in totals], "answer": answer, "compare": word,
             "documents": [invoice_truth(inv, st) for inv, st in zip((first, second), styles)]}
    a, b = money(totals[0]), money(totals[1])
    trace = f"first total: {a}\nsecond total: {b}\n{comparison_lines(a, b)}"
    return images, question, answer, truth, trace


def _chart_pair(rng: random.Random, size: tuple[int, int], scale: int) -> tuple[list, str, str, dict]:
    first = random_chart(rng, kind=rng.choice(("bar", "line")))
    i = rng.randrange(len(first.labels))
    # same categories, so the question names a label both charts show
    second = random_chart(rng, kind=first.kind, labels=first.labels)
    while second.values[i] == first.values[i]:
        second = random_chart(rng, kind=first.kind, labels=first.labels)
    label = first.labels[i]
    answer = "first" if first.values[i] > second.values[i] else "second"
    question = f"Which chart shows the larger value for {label}, the first or the second?"
    images = [render_chart(spec, size=size, scale=scale) for spec in (first, second)]
    truth = {"pair": "charts", "label": label, "answer": answer,
             "charts": [chart_truth(first), chart_truth(second)]}
    a, b = first.value_text(first.values[i]), second.value_text(second.values[i])
    trace = f"first {label}: {a}\nsecond {label}: {b}\n{comparison_lines(a, b)}"
    return images, question, answer, truth, trace


def make_multi_image_sample(seed: int, *, size: tuple[int, int] = DEFAULT_SIZE, scale: int = 1,
                            pair: str | None = None, thinking: bool = False) -> Sample:
    """Two images and a first/second comparison question.

    Args:
        seed: reproduces the sample exactly (images and answer do not depend on `thinking`).
        thinking: the target opens with the compared numbers' trace (see the module docstring).
        size: size of each image at scale 1.
        scale: render upscale.
        pair: "invoices" or "charts"; drawn from the seed when None.
    """
    rng = random.Random(seed)
    drawn = rng.choice(PAIR_KINDS)
    pair = pair or drawn
    if pair not in PAIR_KINDS:
        raise ValueError(f"pair must be one of {PAIR_KINDS}, got {pair!r}")
    build = _invoice_pair if pair == "invoices" else _chart_pair
    images, question, answer, truth, trace = build(rng, size, scale)
    target = format_target(trace, answer, thinking)
    return Sample("multi_image", chat(question, target, num_images=2), target, truth, images=images,
                  thinking=thinking, reasoning=trace if thinking else None, seed=seed)
