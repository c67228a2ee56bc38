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


STEPWISE = re.compile(r"^(\w+): (\d) x (\d+\.\d\d) = ([\d:, ]+) = (\d+\.\d\d); sum = (?:([\d: ]+) = )?(\d+\.\d\d)$")


def _steps(text: str) -> list[tuple[str, int]]:
    """"05:05 23:05" -> [("05", 5), ("23", 5)]; "5:25,25 6:30,32" -> [("5:25", 25), ("6:30", 32)]: what
    each step works on and its two-digit value."""
    return [(ops, int(value)) for ops, value in (step.rsplit(step[-3], 1) for step in text.split(" "))]


def _written_out(steps: list[tuple[str, int]]) -> int:
    """The number whose digits the steps produced: each value's units from the right, the last carry in front."""
    return int(str(steps[-1][1] // 10) + "".join(str(v % 10) for _, v in reversed(steps)))


def test_stepwise_trace_steps_and_results_are_right():
    import random

    from nanovl.train.data.documents import random_invoice
    from nanovl.train.data.reasoning import stepwise_sum_trace, sum_trace

    for seed in range(200):
        invoice = random_invoice(random.Random(seed), num_items=random.Random(seed).randint(1, 4))
        trace, answer = stepwise_sum_trace(invoice)
        assert answer == sum_trace(invoice)[1] and _cents(answer) == invoice.total_cents
        running = 0
        for line, item in zip(trace.split("\n"), invoice.items, strict=True):
            name, qty, price, mul, amount, add, total = STEPWISE.match(line).groups()
            assert (name, int(qty), _cents(price)) == (item.description, item.qty, item.unit_cents)
            # one step per printed price digit, right to left; value = qty x digit + the previous carry
            mul_steps, carry = _steps(mul), 0
            assert "".join(d[0] for d, _ in mul_steps) == price.replace(".", "")[::-1]
            for d, value in mul_steps:
                d, product = d.split(":")  # "d:PP": the digit and qty x digit
                assert int(product) == item.qty * int(d) and value == int(product) + carry
                carry = value // 10
            assert _written_out(mul_steps) == _cents(amount) == item.amount_cents
            # the running sum: digit columns of the previous sum and the amount, right to left
            if running == 0:
                assert add is None and total == amount
            else:
                add_steps, carry = _steps(add), 0
                width = len(add_steps)
                prev, new = f"{running:0{width}d}", f"{item.amount_cents:0{width}d}"
                assert [ops for ops, _ in add_steps] == [x + y for x, y in zip(prev[::-1], new[::-1])]
                for ops, value in add_steps:
                    assert value == int(ops[0]) + int(ops[1]) + carry
                    carry = value // 10
                assert _written_out(add_steps) == _cents(total)
            running += item.amount_cents
            assert _cents(total) == running


def test_stepwise_image_task_keeps_its_image_and_answer():
    for seed in range(4):
        old = make_reasoning_sample(seed, thinking=True, question="sum", augment=False)
        new = make_reasoning_sample(seed, thinking=True, question="sum", augment=False, stepwise=True)
        assert new.truth == old.truth and new.images[0].tobytes() == old.images[0].tobytes()
        assert all(STEPWISE.match(line) for line in new.reasoning.split("\n"))
