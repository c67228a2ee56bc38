"""The training curriculum: which generator, which question and how large, drawn per example seed.

Every sample comes from the synthetic generators in `nanovl.train.data`. Two simplifications help
the tiny model read (the eval uses the same rendering on held-out seeds, so it stays honest):
documents and charts are rendered at scale 2 (512 px pages, ~20 px text after tiling), and
stage 1 asks only single-field questions.

Videos are drawn from the same script generator as `make_video_sample`, but their frames are
rendered straight at the 2 fps sample times instead of going through an mp4 (no PyAV or
espeak-ng on the training machine); the spoken fact becomes a transcript line, as the video
workflow writes ASR output into the prompt.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image

from nanovl.train.data import videos as V
from nanovl.train.data.arithmetic import make_arithmetic_sample
from nanovl.train.data.comparisons import make_comparison_sample
from nanovl.train.data.charts import make_chart_samples
from nanovl.train.data.common import Sample, chat
from nanovl.train.data.documents import make_document_samples
from nanovl.train.data.multi_image import make_multi_image_sample
from nanovl.train.data.reasoning import make_reasoning_sample
from nanovl.train.data.scene_tiles import make_scene_tile_sample
from nanovl.train.data.text_tiles import make_text_tile_sample

# tasks whose targets hold a "<think>\n...\n</think>\n" trace (with thinking on); a chart's value
# question carries one too (the sample's `reasoning`), its other questions do not
TRACED_TASKS = ("reasoning", "arithmetic", "multi_image", "comparison")
# documents/charts/pairs are drawn at this render scale (fonts grow with it)
RENDER_SCALE = 2
VIDEO_FPS = 2.0
# a rough espeak-ng speaking time per character at rate 130 (only used when no audio is made)
_SPEECH_S_PER_CHAR = 0.075

STAGE_TASKS = {
    # stage 0: read the strings on single 128 px tiles (data.text_tiles), the densest reading signal,
    # and name the objects of single video frames (data.scene_tiles): v3, trained without them, said
    # "a yellow circle" for every shape although its image tokens separate colours and shapes
    0: {"text_tile": 1.0, "scene_tile": 0.1},
    # stage 1: read documents (every line, or single fields) and charts (vision-language alignment);
    # text-only arithmetic drills start here, at no image cost (the stepwise trace needed 6-8k drills
    # on the CPU, docs/TRAINING_NOTES.md section 11)
    1: {"text_tile": 1.5, "scene_tile": 0.5, "document": 3.0, "chart": 2.0, "video": 1.0, "arithmetic": 0.5},
    # stage 2: the whole mixture, tiles kept so reading is not traded for the new tasks (v2 had none
    # here: its tiles fell from 10 % / 30.6 % of lines / 39.0 % of digits to 6 % / 26.6 % / 35.4 %)
    # comparison drills (data.comparisons): v5 answered the image pairs against its own readings 22 %
    # of the time (section 13); ~40 text tokens each
    2: {"text_tile": 1.0, "scene_tile": 0.3, "document": 3.0, "chart": 2.0, "multi_image": 1.5, "video": 2.0,
        "reasoning": 2.5, "arithmetic": 1.0, "comparison": 0.5},
}
# sums are traced digit by digit from the right (reasoning.stepwise_sum_trace): with the one-line
# product trace, 12k drills left 0 % of products exact; stepwise, 6.6k drills gave 86 % (section 11)
STEPWISE_SUMS = True
# stage 2 also trains the forms the apps ask, word for word: "json_items" is `nanovl extract --schema
# invoice|receipt` (line items, the schema's own keys), "dense" is `nanovl video captions` and the
# grounded summary (timed events as JSON). Both answers are long (~80 tokens against ~40 for "json"),
# so modest sample weights already give them ~30 % and ~15 % of stage 2's target tokens (the loss is a
# token mean); "json" keeps its header-only form for the eval's invoice task and shares its prefix.
# "read" (every printed line, top to bottom) is the dense reading target: a single field is ~5 answer
# tokens that the answer prior half-predicts, so the first GPU runs learned to ignore the image (a
# swapped image left their loss unchanged to 4 digits, docs/TRAINING_NOTES.md section 7); a page's
# ~60 line tokens can only be predicted by reading. Chart "json" (every label and value) is the same
# for charts.
# "markdown" is `nanovl extract --markdown` word for word (the read lines as Markdown; added in session 10,
# after v7, asked that question, answered with the invoice JSON it knew).
DOC_QUESTIONS = {1: {"read": 4, "total": 2, "vendor": 1, "number": 1, "date": 1, "currency": 1},
                 2: {"read": 1, "markdown": 1, "json": 2, "json_items": 3, "total": 1, "vendor": 1, "number": 1,
                     "date": 1, "currency": 1}}
# chart "json" 1 -> 2 in stage 2 after v7 (session 11): on the CPU, a JSON-heavy chart fine-tune kept the
# value question at 45 % where the usual questions fell to 34 % (docs/TRAINING_NOTES.md section 15)
CHART_QUESTIONS = {1: {"value": 1, "json": 1}, 2: {"value": 4, "largest": 1, "smallest": 1, "json": 2}}
# stage 1 asks for dense captions too: the other questions name the object they ask about, so only
# these and "count" make the model say what a clip shows
VIDEO_QUESTIONS = {1: {"appear": 3, "disappear": 1, "narration": 1, "count": 1, "dense": 1},
                   2: {"appear": 4, "disappear": 2, "interval": 1, "count": 1, "narration": 2, "speech": 1,
                       "dense": 3}}


# a share of the text tiles show only documents' printed totals (text_tiles.money_strings): a page
# prints its currency once, so page tiles rarely hold a symbol or code. On held-out money tiles v4
# reads 36 % of the digits and 49 % of the letters; a short CPU fine-tune with 40 % money tiles
# reached 46 % / 77 % (docs/TRAINING_NOTES.md section 12), so a small share rides along in every stage;
# v5, the first run with it, reads 61 % / 68 % (section 13)
MONEY_TILE_SHARE = 0.1
# and a share show charts' labels and values (text_tiles.chart_strings), some white on a chart colour
# as pie charts print them: v5 answered 33 of its 41 chart misses with a number the chart does not show
CHART_TILE_SHARE = 0.1
# a page or chart costs 50-100 ms of CPU to draw, a text tile 6: the tasks whose one drawn image a run
# may ask several questions (`Mix.questions_per_image`) when its data workers cannot keep up (run 11
# consumed 279 examples/s and 15 workers made 285, docs/TRAINING_NOTES.md section 17)
FANNED_TASKS = ("document", "chart")


@dataclass(frozen=True)
class Mix:
    """A run's override of the curriculum: stage-2 task weights, the text tiles' money/chart shares and
    the questions asked of each drawn page or chart, and the share of pages drawn clean.

    A continuation spends its time where the eval misses (`nanovl train --mix text_tile=2,chart=3
    --tile-shares money=0.15,chart=0.3`) and may trade distinct images for data-worker time
    (`--questions-per-image 2`), or show some pages as born-digital documents are, without rotation
    or noise (`--clean-pages 0.25`); the default Mix is the curriculum above, draw for draw.
    """

    stage2: tuple[tuple[str, float], ...] | None = None
    money_tile_share: float = MONEY_TILE_SHARE
    chart_tile_share: float = CHART_TILE_SHARE
    questions_per_image: int = 1  # of each drawn page or chart (FANNED_TASKS), in every stage
    # pages of the document and sums tasks drawn without `augment`, as born-digital pages are (v10 and
    # v11, trained on augmented pages only, read clean ones about as well: TRAINING_NOTES §18-19)
    clean_page_share: float = 0.0

    def weights(self, stage: int) -> dict[str, float]:
        return dict(self.stage2) if stage == 2 and self.stage2 is not None else STAGE_TASKS[stage]


def parse_mix(weights: str | None = None, tile_shares: str | None = None, questions_per_image: int = 1,
              clean_pages: float = 0.0) -> Mix:
    """`Mix` from "task=w,..." (stage-2 tasks named here replace their weights; the rest keep theirs),
    "money=s,chart=s", a question count and a clean-page share; unknown names, impossible shares and
    counts below 1 are errors, not silently ignored."""
    def pairs(text: str, known, what: str) -> dict[str, float]:
        out = {}
        for item in filter(None, (t.strip() for t in text.split(","))):
            name, sep, value = item.partition("=")
            if not sep or name not in known:
                raise ValueError(f"{what}: expected NAME=NUMBER with NAME in {sorted(known)}, got {item!r}")
            out[name] = float(value)
            if not math.isfinite(out[name]) or out[name] < 0:
                raise ValueError(f"{what}: {name} must be a finite number, not negative")
        return out

    stage2 = None
    if weights:
        merged = {**STAGE_TASKS[2], **pairs(weights, set(STAGE_TASKS[2]), "--mix")}
        if sum(merged.values()) <= 0:
            raise ValueError("--mix: at least one task needs a positive weight")
        stage2 = tuple(sorted(merged.items()))
    shares = pairs(tile_shares or "", {"money", "chart"}, "--tile-shares")
    money = shares.get("money", MONEY_TILE_SHARE)
    chart = shares.get("chart", CHART_TILE_SHARE)
    if money + chart > 1:
        raise ValueError("--tile-shares: money + chart must not exceed 1")
    if isinstance(questions_per_image, bool) or not isinstance(questions_per_image, int) or questions_per_image < 1:
        raise ValueError(f"--questions-per-image: expected a whole number >= 1, got {questions_per_image!r}")
    if isinstance(clean_pages, bool) or not (isinstance(clean_pages, (int, float)) and 0.0 <= clean_pages <= 1.0):
        raise ValueError(f"--clean-pages: expected a share in [0, 1], got {clean_pages!r}")
    return Mix(stage2, money, chart, questions_per_image, float(clean_pages))


@dataclass
class TrainSample:
    """A generator sample plus what the prompt builder needs.

    frames: video frames (PIL) at `frame_times`; speech: [(start, end, text)] transcript segments.
    thinking: the reasoning switch of the prompt (targets without a trace get an empty one).
    """

    sample: Sample
    thinking: bool
    frames: list[Image.Image] = field(default_factory=list)
    frame_times: list[float] = field(default_factory=list)
    speech: list[tuple[float, float, str]] = field(default_factory=list)


def _pick(rng: random.Random, weights: dict[str, float]) -> str:
    names = sorted(weights)
    return rng.choices(names, weights=[weights[n] for n in names])[0]


def _pick_distinct(rng: random.Random, weights: dict[str, float], k: int) -> list[str]:
    """k different names, each drawn by weight from those not yet drawn (the first one as `_pick`):
    every question of a page has one answer, so asking one twice would repeat an example."""
    left, out = dict(weights), []
    for _ in range(min(k, len(left))):
        out.append(_pick(rng, left))
        del left[out[-1]]
    return out


def _augments(seed: int, mix: Mix) -> bool:
    """Whether the page of draw `seed` is rotated and noised (else drawn clean, `mix.clean_page_share`).
    Its own rng, so a share of 0 leaves every other draw as it was."""
    return random.Random(seed ^ 0xC1EA).random() >= mix.clean_page_share


def sample_times(duration: float, fps: float = VIDEO_FPS) -> list[float]:
    """The frame times `nanovl.inputs.video.load_video` samples for a short clip (k / fps < duration)."""
    n = max(1, int(round(duration * fps - 1e-6)))
    times = [k / fps for k in range(n)]
    return [t for t in times if t < duration - 1e-9] or [0.0]


def render_video_sample(seed: int, question: str | None = None) -> tuple[Sample, list[Image.Image], list[float],
                                                                          list[tuple[float, float, str]]]:
    """The clip `make_video_sample(seed)` would write, without the mp4: frames at 2 fps + transcript.

    The rng draws follow `make_video_sample` (script, question kind, fact), so a seed gives the same
    events and fact; the fact's end time is estimated instead of measured from synthesized audio.
    """
    rng = random.Random(seed)
    script = V.random_script(rng, size=V.DEFAULT_SIZE)
    drawn = rng.choices(V.QUESTION_KINDS, weights=V._QUESTION_WEIGHTS)[0]
    key = rng.choice(tuple(V.FACTS))
    value = rng.choice(V.FACTS[key])
    where = rng.random()
    text = f"The {key} is {value}."
    length = _SPEECH_S_PER_CHAR * len(text)
    latest = max(0.5, script.duration - length - 0.25)
    start = (1 + int(where * int(latest * 2))) / 2
    narration = V.Narration(text, key, value, start, round(min(script.duration, start + length), 1))
    kind = question or drawn
    q_text, target = V._question(kind, script, narration, rng)
    times = sample_times(script.duration)
    frames = [V.render_frame(script, t) for t in times]
    truth = {"duration": script.duration, "fps": script.fps, "captions": script.captions(),
             "narration": {"text": text, "key": key, "value": value, "start": start, "end": narration.end},
             "question_kind": kind}
    sample = Sample("video", chat(q_text, target, video=True), target, truth, seed=seed)
    return sample, frames, times, [(narration.start, narration.end, text)]


def draw_sample(seed: int, stage: int, mix: Mix = Mix()) -> TrainSample:
    """One training sample of `stage` (0, 1 or 2) from `seed`: task, question kind and thinking drawn
    from it (`mix` may reweigh stage 2's tasks and the text tiles' kinds; its questions per image are
    ignored: one draw, one question)."""
    return draw_samples(seed, stage, replace(mix, questions_per_image=1))[0]


def draw_samples(seed: int, stage: int, mix: Mix = Mix()) -> list[TrainSample]:
    """The samples of one draw from `seed`: one, or `mix.questions_per_image` distinct questions of one
    page or chart (FANNED_TASKS; fewer where a stage has fewer question kinds). Those tasks' draw weights
    are divided by that number, so each task keeps its share of the examples; with 1 this is
    `draw_sample`, draw for draw."""
    rng = random.Random(seed ^ 0x5EED)
    k = mix.questions_per_image
    weights = {t: w / k if t in FANNED_TASKS else w for t, w in mix.weights(stage).items()}
    task = _pick(rng, weights)
    # non-reasoning answers are trained both behind an empty thought and with thinking off
    thinking = rng.random() < 0.5
    if task == "text_tile":
        # one draw picks money, chart or page strings, so page tiles keep the seeds they had
        u = rng.random()
        money, chart = mix.money_tile_share, mix.chart_tile_share
        return [TrainSample(make_text_tile_sample(seed, money=u < money, chart=money <= u < money + chart),
                            thinking)]
    if task == "scene_tile":
        return [TrainSample(make_scene_tile_sample(seed), thinking)]
    if task == "arithmetic":
        s = make_arithmetic_sample(seed, stepwise=STEPWISE_SUMS)
        return [TrainSample(s, s.thinking)]
    if task == "comparison":
        s = make_comparison_sample(seed)
        return [TrainSample(s, s.thinking)]
    if task in FANNED_TASKS:
        kinds = _pick_distinct(rng, (DOC_QUESTIONS if task == "document" else CHART_QUESTIONS)[stage], k)
        # the first question keeps the draw's switch; the others draw their own after the kinds
        switches = [thinking] + [rng.random() < 0.5 for _ in kinds[1:]]
        if task == "document":
            samples = make_document_samples(seed, kinds, scale=RENDER_SCALE, augment=_augments(seed, mix))
        else:
            samples = make_chart_samples(seed, list(zip(kinds, switches)), scale=RENDER_SCALE)
        return [TrainSample(s, t) for s, t in zip(samples, switches)]
    if task == "multi_image":
        return [TrainSample(make_multi_image_sample(seed, scale=RENDER_SCALE, thinking=thinking), thinking)]
    if task == "reasoning":
        s = make_reasoning_sample(seed, scale=RENDER_SCALE, augment=_augments(seed, mix), stepwise=STEPWISE_SUMS)
        return [TrainSample(s, s.thinking)]
    if task == "video":
        s, frames, times, speech = render_video_sample(seed, _pick(rng, VIDEO_QUESTIONS[stage]))
        return [TrainSample(s, thinking, frames, times, speech)]
    raise ValueError(f"unknown task {task!r}")


def completion_text(ts: TrainSample) -> str:
    """The trained completion after the template's generation prompt (end-of-turn added by the caller)."""
    s = ts.sample
    # targets that carry their own <think> trace when thinking is on
    traced = s.task in TRACED_TASKS or s.reasoning is not None
    if traced or not ts.thinking:
        from nanovl.train.data.reasoning import prompt_split

        return prompt_split(s.target, ts.thinking)[1] if traced else s.target
    # the prompt already opened "<think>\n"; an empty thought closes it
    return "\n</think>\n" + s.target


def describe(ts: TrainSample) -> dict[str, Any]:
    """A small JSON-able summary for logs."""
    return {"task": ts.sample.task, "seed": ts.sample.seed, "thinking": ts.thinking}
