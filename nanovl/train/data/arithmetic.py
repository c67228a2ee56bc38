"""Text-only arithmetic drills: the line items of a random invoice written out as text, and the sum of
their amounts with the same <think> trace the image task (reasoning.py) trains.

Why: v3 copies an invoice's items into its trace and then multiplies wrongly, even "1 x 50.00 = 70.00"
(docs/TRAINING_NOTES.md §9): stage 2's ~6k reasoning samples are too few to learn the products, and
each costs a whole rendered page. A drill costs ~60 text tokens and no image, so the LM can see
thousands of products and running sums per step while the image task keeps the reading.
"""
from __future__ import annotations

import random

from .common import Sample, chat
from .documents import money, random_invoice
from .reasoning import format_target, stepwise_sum_trace, sum_trace

QUESTION = "What is the sum of the line item amounts?"


def make_arithmetic_sample(seed: int, *, stepwise: bool = False) -> Sample:
    """Two or three items as "Mug: 5 at 24.65" lines, then the question; thinking on, so the answer
    follows the trace line by line (qty x price = amount; running sum), worked digit by digit when
    `stepwise` (`reasoning.stepwise_sum_trace`)."""
    rng = random.Random(seed)
    invoice = random_invoice(rng, num_items=rng.randint(2, 3))
    listed = "\n".join(f"{item.description}: {item.qty} at {money(item.unit_cents)}" for item in invoice.items)
    trace, answer = (stepwise_sum_trace if stepwise else sum_trace)(invoice)
    target = format_target(trace, answer, True)
    # each trace line is "Name: q x price = [steps =] amount; sum = ...": its product is the middle part
    products = [line.split(": ", 1)[1].split(";", 1)[0] for line in trace.split("\n")]
    truth = {"answer": answer, "products": products,
             "items": [(i.description, i.qty, i.unit_cents) for i in invoice.items]}
    return Sample("arithmetic", chat(f"{listed}\n{QUESTION}", target), target, truth, thinking=True,
                  reasoning=trace, seed=seed)
