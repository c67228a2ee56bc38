"""Which of two printed numbers is larger: the comparison step of the two-image task, as a trace and as a drill.

Why: v5 reads both numbers of a chart pair into its trace ("first Wed: 56.5 / second Wed: 77.9") and then
answers against its own readings 22 % of the time (docs/TRAINING_NOTES.md section 13). The trace now
ends with the two numbers written at one width, digit under digit ("aligned: 056.5 / 077.9"), and the
first place they differ ("first difference: 5 / 7"), so the verdict is a one-digit comparison. The drill
gives the two numbers as text and asks the same questions, at ~40 tokens and no image.
"""
from __future__ import annotations

import random

from .common import Sample, chat, format_number
from .documents import money
from .reasoning import format_target

ORDINALS = ("first", "second")


def align(a: str, b: str) -> tuple[str, str]:
    """Two non-negative decimals at one width: integer parts padded with leading zeros, fractions
    with trailing ones ("73.4", "8" -> "73.4", "08.0"), so equal positions hold equal place values."""
    (ai, _, af), (bi, _, bf) = a.partition("."), b.partition(".")
    width, places = max(len(ai), len(bi)), max(len(af), len(bf))

    def pad(i: str, f: str) -> str:
        return i.rjust(width, "0") + ("." + f.ljust(places, "0") if places else "")

    return pad(ai, af), pad(bi, bf)


def comparison_lines(a: str, b: str) -> str:
    """The trace's comparison: the aligned pair and the digits at the first place they differ."""
    x, y = align(a, b)
    i = next((k for k, (p, q) in enumerate(zip(x, y)) if p != q), None)
    if i is None:
        raise ValueError(f"{a} and {b} are equal: the pairs are drawn so that they never are")
    return f"aligned: {x} / {y}\nfirst difference: {x[i]} / {y[i]}"


def verdict(a: str, b: str, larger: bool = True) -> str:
    """"first" or "second": the one holding the larger (or smaller) value."""
    first_wins = (float(a) > float(b)) == larger
    return ORDINALS[0 if first_wins else 1]


def make_comparison_sample(seed: int) -> Sample:
    """Two invoice totals or two chart values given as text, and the two-image task's question about them."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        cents = rng.sample(range(100, 400_000), 2) if rng.random() < 0.5 else _close_cents(rng)
        a, b = money(cents[0]), money(cents[1])
        name, larger = "total", rng.random() < 0.7
        word = "larger" if larger else "smaller"
        question = f"The first document's total is {a} and the second's is {b}. Which document has the {word} total, the first or the second?"
    else:
        decimals = [rng.choice((0, 0, 1, 2)) for _ in range(2)]
        a, b = (format_number(rng.uniform(1, 100), d) for d in decimals)
        while float(a) == float(b):
            b = format_number(rng.uniform(1, 100), decimals[1])
        name, larger = rng.choice(("Mon", "Tue", "Wed", "A", "B", "East", "West", "Q1", "Q2", "Apples")), True
        question = (f"The first chart shows {a} for {name} and the second shows {b}. "
                    f"Which chart shows the larger value for {name}, the first or the second?")
    trace = f"first {name}: {a}\nsecond {name}: {b}\n{comparison_lines(a, b)}"
    answer = verdict(a, b, larger)
    target = format_target(trace, answer, True)
    truth = {"answer": answer, "values": [a, b], "compare": "larger" if larger else "smaller",
             "pair": "invoices" if name == "total" else "charts"}
    return Sample("comparison", chat(question, target), target, truth, thinking=True, reasoning=trace, seed=seed)


def _close_cents(rng: random.Random) -> list[int]:
    """Two totals with the same leading digits, the hard case: they differ only from the tens down."""
    base = rng.randrange(1000, 400_000)
    # base >= 1000 and the two differ by 1..999, so the floor of 1.00 never makes them equal
    return [base, max(100, base + rng.choice((-1, 1)) * rng.randrange(1, 1000))]


def verdict_of_trace(trace: str, larger: bool = True) -> str | None:
    """The answer a trace's own two readings imply ("first X: a" / "second X: b"), or None when its
    first two lines do not hold two numbers (the eval's "follows its readings" score)."""
    lines = trace.strip().split("\n")
    if len(lines) < 2:
        return None
    try:
        a, b = (line.rsplit(": ", 1)[1].strip() for line in lines[:2])
        if float(a) == float(b):
            return None
    except (IndexError, ValueError):
        return None
    return verdict(a, b, larger)
