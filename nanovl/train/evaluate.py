"""`nanovl eval`: exact-match metrics of a checkpoint on held-out samples of the training curriculum.

    nanovl eval                                   # the bundled tiny model, 100 samples per task
    nanovl eval --model DIR --n 20 --tasks invoice,sums --json results.json

Every sample comes from the same generators, render scale and question texts as training
(`nanovl.train.samples`), from seeds in a range training never draws (see `held_out_seed`).
Prompts go through the public `LLM.chat` path with greedy decoding, all of a task batched
through the engine: images as PIL images, videos as mp4 files with their transcript lines,
so the figures are what a user of the model gets. Two tasks ask exactly what the apps ask, with
their constrained decoding: `invoice_items` (`nanovl extract --schema invoice|receipt`: line items
exact per item) and `dense_captions` (`nanovl video captions`: events matched within 1 s).
The command line (arguments, the run, the table and --json) is `eval_cli.py`.
"""
from __future__ import annotations

import json
import math
import random
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from nanovl.sampling_params import SamplingParams
from nanovl.train.data import videos as V
from nanovl.train.data.charts import make_chart_sample
from nanovl.train.data.documents import make_document_sample
from nanovl.train.data.multi_image import make_multi_image_sample
from nanovl.train.data.reasoning import make_reasoning_sample
from nanovl.train.data.arithmetic import make_arithmetic_sample
from nanovl.train.data.comparisons import make_comparison_sample, verdict_of_trace
from nanovl.train.data.scene_tiles import make_scene_tile_sample
from nanovl.train.data.text_tiles import make_text_tile_sample
from nanovl.train.samples import RENDER_SCALE, STEPWISE_SUMS, TrainSample, render_video_sample

# training example seeds are (dataset seed << 32) + index (recipe --seed, data.mixture seeds), so
# every dataset seed below 2**32 stays under 2**64: the held-out blocks start there
DEFAULT_SEED_BASE = 1 << 64
_TASK_BITS = 32
INVOICE_FIELDS = ("vendor", "invoice_number", "date", "currency", "total")
# tokens of slack past the reference answer's length: room for a near-miss, not for rambling
_SLACK = 24


@dataclass
class Case:
    """One held-out prompt: the chat messages, its sampling params and what the scorer needs."""

    task: str
    seed: int
    messages: list[dict[str, Any]]
    params: SamplingParams
    target: str
    truth: dict[str, Any]
    train: TrainSample  # the same sample as training sees it (prompt parity checks)


@dataclass(frozen=True)
class Task:
    """A held-out task: how to make a case, score an output, and which figure meets which target.

    score(case, out) -> {metric: (hits, total)}; headline(metrics) -> the figure beside `target`.
    """

    name: str
    make: Callable[[int, "EvalContext"], Case]
    score: Callable[[Case, Any, "EvalContext"], dict[str, tuple[float, int]]]
    headline_name: str
    target: float
    lower_is_better: bool = False
    headline: Callable[[dict[str, float]], float] | None = None

    def headline_value(self, metrics: dict[str, float]) -> float:
        return self.headline(metrics) if self.headline else metrics[self.headline_name]

    def meets(self, value: float) -> bool:
        return value <= self.target if self.lower_is_better else value >= self.target


@dataclass
class EvalContext:
    """Per-run state the task builders share: the tokenizer, the thinking switch, a folder for videos."""

    tokenizer: Any
    thinking: bool
    workdir: Path
    think_ids: frozenset[int] = field(default_factory=frozenset)

    def max_tokens(self, target: str) -> int:
        return len(self.tokenizer.encode(target)) + _SLACK


def held_out_seed(seed_base: int, task: str, index: int) -> int:
    """The generator seed of example `index` of `task`: each task has its own 2**32 block above `seed_base`."""
    return seed_base + (TASK_NAMES.index(task) << _TASK_BITS) + index


# ------------------------------------------------------------------ prompts
def _image_messages(sample, question: str | None = None) -> list[dict[str, Any]]:
    parts = [{"type": "image", "image": im} for im in sample.images]
    return [{"role": "user", "content": parts + [{"type": "text", "text": question or sample.question}]}]


def _params(ctx: EvalContext, target: str, thinking: bool | None,
            response_format: dict | None = None) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=ctx.max_tokens(target), enable_thinking=thinking,
                          response_format=response_format)


def make_invoice(seed: int, ctx: EvalContext) -> Case:
    s = make_document_sample(seed, scale=RENDER_SCALE, question="json")
    return Case("invoice", seed, _image_messages(s), _params(ctx, s.target, ctx.thinking), s.target, s.truth,
                TrainSample(s, ctx.thinking))


def make_chart(seed: int, ctx: EvalContext) -> Case:
    # with thinking on the answer follows the chart's readings (charts.chart_trace): the headline scores the
    # answer only, traced cases also score the readings
    s = make_chart_sample(seed, scale=RENDER_SCALE, question="value", thinking=ctx.thinking)
    truth = {"value": s.truth["values"][s.truth["labels"].index(s.truth["label"])], "kind": s.truth["kind"],
             "values": list(s.truth["values"]), "label": s.truth["label"], "readings": s.reasoning}
    target = s.target.rsplit("</think>\n", 1)[-1]
    return Case("chart", seed, _image_messages(s), _params(ctx, s.target, ctx.thinking), target, truth,
                TrainSample(s, ctx.thinking))


def make_chart_json(seed: int, ctx: EvalContext) -> Case:
    s = make_chart_sample(seed, scale=RENDER_SCALE, question="json")
    truth = dict(zip(s.truth["labels"], s.truth["values"]))
    return Case("chart_json", seed, _image_messages(s), _params(ctx, s.target, ctx.thinking), s.target, truth,
                TrainSample(s, ctx.thinking))


def make_pair(seed: int, ctx: EvalContext) -> Case:
    s = make_multi_image_sample(seed, scale=RENDER_SCALE, thinking=ctx.thinking)
    # the answer alone is scored; with thinking on it follows the trace of the two compared numbers
    return Case("multi_image", seed, _image_messages(s), _params(ctx, s.target, ctx.thinking), s.truth["answer"],
                {"pair": s.truth["pair"], "compare": s.truth.get("compare", "larger")}, TrainSample(s, ctx.thinking))


def make_comparison(seed: int, ctx: EvalContext) -> Case:
    s = make_comparison_sample(seed)
    return Case("comparison", seed, _image_messages(s), _params(ctx, s.target, True), s.truth["answer"], s.truth,
                TrainSample(s, True))


def _make_tile(make_sample: Callable[[int], Any]) -> Callable[[int, EvalContext], Case]:
    """A one-tile task (text or scene tile): the generator's own truth, the eval's thinking switch."""
    def make(seed: int, ctx: EvalContext) -> Case:
        s = make_sample(seed)
        return Case(s.task, seed, _image_messages(s), _params(ctx, s.target, ctx.thinking), s.target, s.truth,
                    TrainSample(s, ctx.thinking))
    return make


def make_arithmetic(seed: int, ctx: EvalContext, stepwise: bool = False) -> Case:
    s = make_arithmetic_sample(seed, stepwise=stepwise)
    return Case("arithmetic", seed, _image_messages(s), _params(ctx, s.target, True), s.target, s.truth,
                TrainSample(s, True))


def _video_messages(seed: int, workdir: Path, question: str,
                    speech: list[tuple[float, float, str]]) -> list[dict[str, Any]]:
    # the mp4 of the same clip: render_video_sample draws its script first from Random(seed);
    # decoded at the engine's 2 fps it yields the frames training rendered at those times
    script = V.random_script(random.Random(seed), size=V.DEFAULT_SIZE)
    path = workdir / f"video_{seed}.mp4"
    V.write_video(script, path)
    transcript = [{"start": a, "end": b, "text": t} for a, b, t in speech]
    return [{"role": "user", "content": [{"type": "video", "video": str(path), "transcript": transcript},
                                         {"type": "text", "text": question}]}]


def sample_messages(ts: TrainSample, workdir: Path) -> list[dict[str, Any]]:
    """The chat messages a user would send for a drawn training sample (`samples.draw_sample`): its
    images as PIL images, its video as an mp4 written to `workdir` with the transcript, its question.
    Calibration requests of `nanovl quantize` are these."""
    if ts.frames:
        return _video_messages(ts.sample.seed, Path(workdir), ts.sample.question, ts.speech)
    return _image_messages(ts.sample)


def make_video(seed: int, ctx: EvalContext) -> Case:
    s, frames, times, speech = render_video_sample(seed, "appear")
    return Case("video", seed, _video_messages(seed, ctx.workdir, s.question, speech), _params(ctx, s.target, ctx.thinking),
                s.target, {"start": float(s.target)}, TrainSample(s, ctx.thinking, frames, times, speech))


def make_invoice_items(seed: int, ctx: EvalContext, augment: bool = True) -> Case:
    """`nanovl extract --schema <kind>` on one page: the app's prompt and schema-constrained decoding.
    augment=False draws the page without rotation or noise, like the README's bundled sample (the
    `clean_items` task)."""
    from nanovl.apps.schemas import extraction_prompt, load_schema, response_format

    s = make_document_sample(seed, scale=RENDER_SCALE, augment=augment, question="json_items")
    schema = load_schema(s.truth["kind"])
    params = _params(ctx, s.target, ctx.thinking, response_format(schema))
    truth = {**s.truth, "number_key": f"{s.truth['kind']}_number", "schema": schema}
    return Case("invoice_items" if augment else "clean_items", seed, _image_messages(s, extraction_prompt(schema)),
                params, s.target, truth, TrainSample(s, ctx.thinking))


def make_dense_captions(seed: int, ctx: EvalContext) -> Case:
    """`nanovl video captions` on a one-segment clip: the app's question and caption schema."""
    from nanovl.apps import captions as cap

    s, frames, times, speech = render_video_sample(seed, "dense")
    params = _params(ctx, s.target, ctx.thinking, cap.response_format(s.truth["duration"]))
    return Case("dense_captions", seed, _video_messages(seed, ctx.workdir, cap.CAPTION_PROMPT, speech), params, s.target,
                {"captions": s.truth["captions"]}, TrainSample(s, ctx.thinking, frames, times, speech))


def _make_sum(thinking: bool, task: str) -> Callable[[int, EvalContext], Case]:
    def make(seed: int, ctx: EvalContext) -> Case:
        # the trace form training uses (it sets the answer budget; the answer is the same either way)
        s = make_reasoning_sample(seed, scale=RENDER_SCALE, thinking=thinking, question="sum",
                                  stepwise=STEPWISE_SUMS)
        # no explicit switch: the question itself carries /no_think when thinking is off, as a user writes it
        return Case(task, seed, _image_messages(s), _params(ctx, s.target, None), s.target,
                    {"answer": s.truth["answer"]}, TrainSample(s, thinking))
    return make


# ------------------------------------------------------------------ scoring
def _float(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _within(pred: float | None, truth: float, rel: float) -> bool:
    return pred is not None and abs(pred - truth) <= rel * abs(truth) + 1e-9


def score_invoice(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    try:
        got = json.loads(out.text.strip())
    except ValueError:
        got = None
    got = got if isinstance(got, dict) else {}
    hits = {}
    for name in INVOICE_FIELDS:
        value = got.get(name)
        if name == "total":
            ok = (isinstance(value, (int, float)) and not isinstance(value, bool)
                  and round(value * 100) == case.truth["total_cents"])
        else:
            ok = value == case.truth[name]
        hits[name] = ok
    return {**{k: (float(v), 1) for k, v in hits.items()}, "all_fields": (float(all(hits.values())), 1),
            "valid_json": (float(bool(got)), 1)}


def score_text_tile(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    want, got = case.truth["lines"], out.text.strip().split("\n")
    right = sum(a == b for a, b in zip(want, got))
    # glyph-level progress under the whole-line figures: each target digit / letter counts when
    # the answer has the same character at the same place of the same line
    pairs = [(w, g) for a, b in zip(want, got) for w, g in zip(a, b)]
    chars = [c for line in want for c in line]

    def in_place(kind) -> tuple[float, int]:
        return float(sum(w == g for w, g in pairs if kind(w))), sum(map(kind, chars))

    return {"exact": (float(got == want), 1), "lines_exact": (float(right), len(want)),
            "digits": in_place(str.isdigit), "letters": in_place(str.isalpha)}


def score_scene_tile(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    """Objects named right in place (line for line), and by part: a shape's colour, its shape."""
    got = out.text.strip().split("\n")
    objects = case.truth["objects"]
    right = sum(a == b for a, b in zip(case.truth["lines"], got))
    n_shapes = sum(o["kind"] == "shape" for o in objects)
    # each shape beside the words of its line: "a red circle" -> ["a", "red", "circle"]
    named = [(o, g.split()) for o, g in zip(objects, got) if o["kind"] == "shape"]
    colour = sum(len(w) == 3 and w[1] == o["color"] for o, w in named)
    shape = sum(len(w) == 3 and w[2] == o["name"] for o, w in named)
    return {"exact": (float(got == case.truth["lines"]), 1), "objects": (float(right), len(objects)),
            "colours": (float(colour), n_shapes), "shapes": (float(shape), n_shapes)}


def score_arithmetic(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    """The answer, and how many of the trace's products ("4 x 77.54 = 310.16") are written right."""
    trace = out.reasoning_content or ""
    products = case.truth["products"]
    return {"accuracy": (float(out.text.strip() == case.truth["answer"]), 1),
            "products": (float(sum(p in trace for p in products)), len(products))}


def score_chart(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    """Within 2 %, also per chart kind (bar / line / pie), and how often a wrong answer is another value
    the chart prints: a number read right but tied to the wrong label, not a misread one."""
    pred = _float(out.text)
    ok = _within(pred, case.truth["value"], 0.02)
    other = not ok and any(_within(pred, v, 1e-9) for v in case.truth["values"])
    scores = {"within_2pct": (float(ok), 1), "exact": (float(out.text.strip() == case.target), 1),
              case.truth["kind"]: (float(ok), 1), "wrong_label": (float(other), 1)}
    if case.truth.get("readings") is not None:
        # traced: did it read the whole chart right, and does the answer copy its own reading of the label?
        read = (out.reasoning_content or "").strip()
        mine = dict(line.split(": ", 1) for line in read.split("\n") if ": " in line)
        scores["readings_right"] = (float(read == case.truth["readings"]), 1)
        scores["follows_readings"] = (float(mine.get(case.truth["label"]) == out.text.strip()), 1)
    return scores


def score_chart_json(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    try:
        got = json.loads(out.text.strip())
    except ValueError:
        got = None
    got = got if isinstance(got, dict) else {}
    ok = sum(_within(_num(got.get(k)), v, 0.02) for k, v in case.truth.items())
    return {"values_within_2pct": (float(ok), len(case.truth)), "exact": (float(out.text.strip() == case.target), 1)}


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def score_pair(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    """The verdict; with a trace, also whether the verdict follows the two numbers the model read
    (`follows_readings`) and whether those readings imply the right answer (`readings_right`)."""
    answer = out.text.strip()
    ok = float(answer == case.target)
    scores = {"accuracy": (ok, 1), case.truth["pair"]: (ok, 1)}
    implied = verdict_of_trace(out.reasoning_content or "", case.truth["compare"] == "larger")
    if implied is not None:
        scores["follows_readings"] = (float(answer == implied), 1)
        scores["readings_right"] = (float(implied == case.target), 1)
    return scores


def score_video(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    pred = _float(out.text)
    near = pred is not None and abs(pred - case.truth["start"]) <= 1.0 + 1e-9
    return {"start_within_1s": (float(near), 1), "exact": (float(out.text.strip() == case.target), 1)}


def _same_item(got: Any, want: dict) -> bool:
    if not isinstance(got, dict) or set(got) != {"description", "qty", "unit_price"}:
        return False
    qty, price = got["qty"], _num(got["unit_price"])
    return (got["description"] == want["description"] and isinstance(qty, int) and not isinstance(qty, bool)
            and qty == want["qty"] and price is not None and round(price * 100) == round(want["unit_price"] * 100))


def score_invoice_items(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    """Line items exact per item (position i of the answer against item i), the header fields under the
    schema's keys, and the whole answer: schema-valid and equal to the ground truth."""
    from nanovl.apps.schemas import validation_errors

    try:
        got = json.loads(out.text.strip())
    except ValueError:
        got = None
    got = got if isinstance(got, dict) else {}
    truth = case.truth
    want_items = truth["items"]
    items = got.get("items") if isinstance(got.get("items"), list) else []
    item_hits = sum(_same_item(items[i], w) for i, w in enumerate(want_items) if i < len(items))
    header = {"vendor": truth["vendor"], truth["number_key"]: truth["invoice_number"], "date": truth["date"],
              "currency": truth["currency"]}
    header_hits = sum(got.get(k) == v for k, v in header.items())
    total = got.get("total")
    header_hits += (isinstance(total, (int, float)) and not isinstance(total, bool)
                    and round(total * 100) == truth["total_cents"])
    exact = (set(got) == set(header) | {"total", "items"} and header_hits == len(header) + 1
             and len(items) == len(want_items) and item_hits == len(want_items))
    return {"items_exact": (float(item_hits), len(want_items)),
            "item_count": (float(len(items) == len(want_items)), 1),
            "header_fields": (float(header_hits), len(header) + 1),
            "all_exact": (float(exact), 1),
            "schema_valid": (float(bool(got) and not validation_errors(got, truth["schema"])), 1)}


def score_dense_captions(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    """Events parsed as the captions app parses them; a true event is matched by an unused answer event
    with the same caption whose start and end are each within 1 s of it."""
    from nanovl.apps.captions import parse_captions

    pred = parse_captions(out.text.strip())
    want = case.truth["captions"]
    used: set[int] = set()
    for w in want:
        j = next((j for j, p in enumerate(pred) if j not in used and p.caption == w["caption"]
                  and abs(p.start - w["start"]) <= 1.0 + 1e-9 and abs(p.end - w["end"]) <= 1.0 + 1e-9), None)
        if j is not None:
            used.add(j)
    return {"within_1s": (float(len(used)), len(want)),
            "precision_1s": (float(len(used)), max(len(pred), 1)),
            "count_exact": (float(len(pred) == len(want)), 1),
            "exact": (float(out.text.strip() == case.target), 1)}


def _has_reasoning(out, ctx: EvalContext) -> bool:
    # think markers are special tokens (dropped from text), so look at the ids; a trace written
    # without markers still shows its running "sum =" lines
    return bool(out.reasoning_content) or bool(ctx.think_ids & set(out.token_ids)) or "sum =" in out.text


def score_sum(case: Case, out, ctx: EvalContext) -> dict[str, tuple[float, int]]:
    return {"accuracy": (float(out.text.strip() == case.truth["answer"]), 1),
            "with_reasoning": (float(_has_reasoning(out, ctx)), 1)}


TASKS: dict[str, Task] = {t.name: t for t in (
    Task("invoice", make_invoice, score_invoice, "min field exact", 0.90,
         headline=lambda m: min(m[f] for f in INVOICE_FIELDS)),
    Task("chart", make_chart, score_chart, "within_2pct", 0.85),
    Task("chart_json", make_chart_json, score_chart_json, "values_within_2pct", 0.85),
    Task("multi_image", make_pair, score_pair, "accuracy", 0.95),
    Task("video", make_video, score_video, "start_within_1s", 0.80),
    Task("sums", _make_sum(True, "sums"), score_sum, "accuracy", 0.80),
    Task("sums_no_think", _make_sum(False, "sums_no_think"), score_sum, "with_reasoning", 0.0,
         lower_is_better=True),
    # the apps' own questions: `nanovl extract --schema invoice|receipt` and `nanovl video captions`
    Task("invoice_items", make_invoice_items, score_invoice_items, "items_exact", 0.90),
    Task("dense_captions", make_dense_captions, score_dense_captions, "within_1s", 0.80),
    # diagnostic, no issue target: can the model read the strings on one tile (training's stage 0)?
    Task("text_tile", _make_tile(make_text_tile_sample), score_text_tile, "exact", 0.90),
    # diagnostic: can it name the objects of one video frame (colour and shape)?
    Task("scene_tile", _make_tile(make_scene_tile_sample), score_scene_tile, "exact", 0.90),
    # diagnostic: the sums' arithmetic alone, the items given as text (no reading involved)
    Task("arithmetic", make_arithmetic, score_arithmetic, "accuracy", 0.80),
    # the same drills with the digit-by-digit trace (reasoning.stepwise_sum_trace); a product counts
    # only when its steps are right too
    Task("arithmetic_stepwise", lambda seed, ctx: make_arithmetic(seed, ctx, stepwise=True), score_arithmetic,
         "accuracy", 0.80),
    # diagnostic: tiles of documents' printed totals, where a page shows its currency symbol or code
    Task("money_tile", _make_tile(lambda seed: make_text_tile_sample(seed, money=True)), score_text_tile,
         "exact", 0.90),
    # diagnostic: the pairs' comparison alone, the two numbers given as text (data.comparisons)
    Task("comparison", make_comparison, score_pair, "accuracy", 0.95),
    # diagnostic: tiles of charts' labels and printed values, some white on a chart colour
    Task("chart_tile", _make_tile(lambda seed: make_text_tile_sample(seed, chart=True)), score_text_tile,
         "exact", 0.90),
    # diagnostic: `invoice_items` on clean pages (no rotation or noise), the form of the bundled
    # sample and of most born-digital PDFs; the whole answer exact is the figure people see
    Task("clean_items", lambda seed, ctx: make_invoice_items(seed, ctx, augment=False),
         score_invoice_items, "all_exact", 0.90),
)}
# fixed order: a task's seed block depends on its position, so new tasks go at the end
TASK_NAMES = tuple(TASKS)


# ------------------------------------------------------------------ running
def make_cases(task: str, n: int, seed_base: int, ctx: EvalContext) -> list[Case]:
    """The first `n` held-out cases of `task`."""
    return [TASKS[task].make(held_out_seed(seed_base, task, i), ctx) for i in range(n)]


def run_task(llm, task: str, n: int, *, seed_base: int, ctx: EvalContext) -> dict[str, Any]:
    """Make, generate (one batched `llm.chat`) and score `n` cases; returns the task's result record."""
    spec = TASKS[task]
    t0 = time.perf_counter()
    cases = make_cases(task, n, seed_base, ctx)
    t1 = time.perf_counter()
    outs = llm.chat([c.messages for c in cases], [c.params for c in cases])
    t2 = time.perf_counter()
    sums: dict[str, list[float]] = {}
    records = []
    for case, out in zip(cases, outs):
        scores = spec.score(case, out, ctx)
        for k, (hit, total) in scores.items():
            acc = sums.setdefault(k, [0.0, 0])
            acc[0] += hit
            acc[1] += total
        records.append({"seed": case.seed, "target": case.target, "output": out.text,
                        "reasoning": out.reasoning_content, "scores": {k: v[0] / v[1] for k, v in scores.items() if v[1]}})
    metrics = {k: h / t for k, (h, t) in sums.items() if t}
    value = spec.headline_value(metrics) if metrics else float("nan")
    gen = sum(o.num_generated_tokens for o in outs)
    # the headline's counts: its own metric's, or (a min over fields) the field it equals
    counts = sums.get(spec.headline_name) or next((c for k, c in sums.items() if c[1] and metrics[k] == value), None)
    return {"n": n, "headline": spec.headline_name, "value": value, "target": spec.target,
            "interval": wilson_interval(*counts) if counts else None,
            "lower_is_better": spec.lower_is_better, "meets_target": spec.meets(value), "metrics": metrics,
            "prompt_tokens": sum(o.num_prompt_tokens for o in outs), "generated_tokens": gen,
            "make_s": t1 - t0, "generate_s": t2 - t1, "tokens_per_s": gen / max(t2 - t1, 1e-9),
            "records": records}


def evaluate(llm, counts: dict[str, int], *, seed_base: int = DEFAULT_SEED_BASE, thinking: bool = False,
             workdir: str | Path | None = None) -> dict[str, Any]:
    """Held-out metrics of `llm` on each task in `counts` (task -> number of cases).

    Args:
        llm: a `nanovl.LLM`.
        thinking: the reasoning switch of the non-arithmetic tasks (the sums set their own).
        workdir: folder for the videos (a temporary one when None).
    Returns:
        {"seed_base", "thinking", "tasks": {task: record}} (records hold metrics, targets, timing, outputs).
    """
    unknown = sorted(set(counts) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown eval tasks {unknown}; known: {list(TASK_NAMES)}")
    tok = llm.tokenizer
    think_ids = frozenset(i for i in (tok.token_to_id("<think>"), tok.token_to_id("</think>")) if i is not None)
    with tempfile.TemporaryDirectory(prefix="nanovl-eval-") as tmp:
        ctx = EvalContext(tok, thinking, Path(workdir or tmp), think_ids)
        ctx.workdir.mkdir(parents=True, exist_ok=True)
        results = {t: run_task(llm, t, n, seed_base=seed_base, ctx=ctx) for t, n in counts.items() if n > 0}
    return {"seed_base": seed_base, "thinking": thinking, "tasks": results}


def wilson_interval(hits: float, total: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of hits / total: at n = 50 a rate is known to about +-12 points,
    so two checkpoints' figures are told apart by this, not by their point values."""
    if total <= 0:
        return (float("nan"), float("nan"))
    p = hits / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return (max(0.0, centre - half), min(1.0, centre + half))


def format_table(result: dict[str, Any]) -> str:
    """The results as a fixed-width text table: headline rows with target and verdict, other metrics indented."""
    rows = [f"{'task':<14} {'metric':<20} {'value':>7} {'target':>8} {'n':>5}  ok   tok/s   95% interval"]
    for task, r in result["tasks"].items():
        sign = "<=" if r["lower_is_better"] else ">="
        lo_hi = r.get("interval")
        interval = f"{_pct(lo_hi[0])}-{_pct(lo_hi[1])}" if lo_hi else ""
        rows.append(f"{task:<14} {r['headline']:<20} {_pct(r['value']):>7} {sign + _pct(r['target']):>8} "
                    f"{r['n']:>5}  {'yes' if r['meets_target'] else 'NO ':<3}  {r['tokens_per_s']:6.1f}   {interval}")
        for k, v in r["metrics"].items():
            if k != r["headline"]:
                rows.append(f"{'':<14}   {k:<18} {_pct(v):>7}")
    return "\n".join(rows)


def _pct(x: float) -> str:
    return "nan" if x != x else f"{100 * x:.1f}%"
