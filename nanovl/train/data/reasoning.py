"""Arithmetic over documents with an optional <think> trace in the model's format.

The invoice is drawn without amounts or total, so the answer needs qty x price per line and a sum.
Thinking on: target "<think>\\n{trace}\\n</think>\\n{answer}"; off: "/no_think" in the question, target "{answer}".
"""
from __future__ import annotations

import dataclasses
import random

from .common import Sample, augment as augment_image, chat
from .documents import DEFAULT_SIZE, Invoice, invoice_truth, money, random_invoice, random_style, render_invoice

NO_THINK = "/no_think"
QUESTION_KINDS = ("sum", "units")
_QUESTIONS = {"sum": "What is the sum of the line item amounts?", "units": "How many units were bought in total?"}


def sum_trace(invoice: Invoice) -> tuple[str, str]:
    """(trace, answer) for the sum of qty x unit price; one line per item with the running sum."""
    lines, running = [], 0
    for item in invoice.items:
        running += item.amount_cents
        lines.append(f"{item.description}: {item.qty} x {money(item.unit_cents)} = "
                     f"{money(item.amount_cents)}; sum = {money(running)}")
    return "\n".join(lines), money(running)


def mul_steps(qty: int, price: str) -> str:
    """qty x price one printed digit at a time from the right: "d:PP,TU" where PP = qty * d and
    TU = PP + carry, the carry being the previous step's T. 5 x "24.65" -> "5:25,25 6:30,32 4:20,23
    2:10,12" (product 123.25)."""
    steps, carry = [], 0
    for d in reversed(price.replace(".", "")):
        # NOTE: "d:TU" alone (qty * d + carry in one token) left 12 % of the steps wrong after 262 CPU
        # steps, all but 3 of them steps with a carry; the product alone was right 97 % of the time
        t = qty * int(d) + carry
        steps.append(f"{d}:{qty * int(d):02d},{t:02d}")
        carry = t // 10
    return " ".join(steps)


def add_steps(a: str, b: str) -> str:
    """a + b (printed money) one digit column at a time from the right: "xy:TU" where TU = x + y + carry
    and the carry is the previous step's T. "334.10" + "123.25" -> "05:05 12:03 43:07 ..." (457.35)."""
    a, b = a.replace(".", ""), b.replace(".", "")
    width = max(len(a), len(b))
    steps, carry = [], 0
    for x, y in zip(reversed(a.rjust(width, "0")), reversed(b.rjust(width, "0"))):
        t = int(x) + int(y) + carry
        steps.append(f"{x}{y}:{t:02d}")
        carry = t // 10
    return " ".join(steps)


def stepwise_sum_trace(invoice: Invoice) -> tuple[str, str]:
    """(trace, answer) like `sum_trace`, with every product and running sum worked digit by digit from
    the right before it is written out (a product of a 4-digit price is not learned in one go, §9):
    "Mug: 5 x 24.65 = 5:25,25 6:30,32 4:20,23 2:10,12 = 123.25; sum = 05:05 23:05 ... = 457.35"."""
    lines, running = [], 0
    for item in invoice.items:
        price, amount = money(item.unit_cents), money(item.amount_cents)
        line = f"{item.description}: {item.qty} x {price} = {mul_steps(item.qty, price)} = {amount}; sum = "
        # the first running sum is the product itself
        line += f"{add_steps(money(running), amount)} = " if running else ""
        running += item.amount_cents
        lines.append(line + money(running))
    return "\n".join(lines), money(running)


def units_trace(invoice: Invoice) -> tuple[str, str]:
    """(trace, answer) for the total quantity; one line per item with the running count."""
    lines, running = [], 0
    for item in invoice.items:
        running += item.qty
        lines.append(f"{item.description}: {item.qty}; sum = {running}")
    return "\n".join(lines), str(running)


def format_target(trace: str, answer: str, thinking: bool) -> str:
    """The assistant text: the answer, preceded by the <think> block when thinking is on."""
    return f"<think>\n{trace}\n</think>\n{answer}" if thinking else answer


def prompt_split(target: str, thinking: bool) -> tuple[str, str]:
    """(generation-prompt suffix, completion) for training with the chat template (SPEC Part G).

    The inference template already ends the prompt with "<think>\n" (on) or "<think></think>" (off),
    so the loss belongs on the completion only: "{trace}\n</think>\n{answer}" or "{answer}".
    """
    if not thinking:
        return "<think></think>", target
    opener = "<think>\n"
    if not target.startswith(opener):
        raise ValueError("a thinking target must start with '<think>\\n'")
    return opener, target[len(opener):]


def make_reasoning_sample(seed: int, *, thinking: bool | None = None, size: tuple[int, int] = DEFAULT_SIZE,
                          scale: int = 1, augment: bool = True, question: str | None = None,
                          stepwise: bool = False) -> Sample:
    """One invoice (no amount column, no total) with an arithmetic question.

    Args:
        seed: reproduces the sample exactly.
        thinking: with a <think> trace (True) or with /no_think (False); drawn from the seed when None.
        size: page size at scale 1.
        scale: render upscale.
        augment: rotate (<= 2 degrees) and add noise.
        question: "sum" or "units"; drawn from the seed when None.
        stepwise: the sum's trace worked digit by digit (`stepwise_sum_trace`); same image and answer.
    """
    rng = random.Random(seed)
    invoice = random_invoice(rng, num_items=rng.randint(2, 3))
    style = dataclasses.replace(random_style(rng), show_amounts=False, show_total=False)
    drawn_kind, drawn_thinking = rng.choices(QUESTION_KINDS, weights=(3, 1))[0], rng.random() < 0.5
    kind = question or drawn_kind
    thinking = drawn_thinking if thinking is None else thinking
    if kind not in QUESTION_KINDS:
        raise ValueError(f"question must be one of {QUESTION_KINDS}, got {kind!r}")
    trace, answer = ((stepwise_sum_trace if stepwise else sum_trace) if kind == "sum" else units_trace)(invoice)
    text = _QUESTIONS[kind] if thinking else f"{_QUESTIONS[kind]} {NO_THINK}"
    target = format_target(trace, answer, thinking)
    image = render_invoice(invoice, style, size=size, scale=scale)
    if augment:
        image = augment_image(image, rng)
    truth = invoice_truth(invoice, style) | {"question_kind": kind, "answer": answer}
    return Sample("reasoning", chat(text, target, num_images=1), target, truth, images=[image],
                  thinking=thinking, reasoning=trace if thinking else None, seed=seed)
