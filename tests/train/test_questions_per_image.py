"""`--questions-per-image K`: one drawn page or chart is asked K different questions, so the data
workers render a fraction of the images, and every task keeps its share of the examples."""
from __future__ import annotations

import collections
from types import SimpleNamespace

import pytest
import torch
from tokenizers import Tokenizer

import nanovl.train.samples as S
from nanovl.llm import BUNDLED_MODEL
from nanovl.model.presets import preset_config
from nanovl.train.data.charts import make_chart_sample, make_chart_samples
from nanovl.train.data.documents import make_document_sample, make_document_samples
from nanovl.train.dataset import CurriculumStream, StageSchedule
from nanovl.train.recipe import PRESET
from nanovl.train.samples import RENDER_SCALE, Mix, draw_sample, draw_samples, parse_mix


def _same(a, b) -> bool:
    return ((a.messages, a.target, a.truth, a.thinking, a.reasoning) == (b.messages, b.target, b.truth, b.thinking,
                                                                         b.reasoning)
            and [im.tobytes() for im in a.images] == [im.tobytes() for im in b.images])


@pytest.mark.parametrize("seed", [3, 4])
def test_a_page_asked_twice_is_drawn_once_and_its_first_question_is_the_single_sample(seed):
    first, second = make_document_samples(seed, ["read", "json_items"], scale=RENDER_SCALE)
    assert _same(first, make_document_sample(seed, scale=RENDER_SCALE, question="read"))
    assert _same(second, make_document_sample(seed, scale=RENDER_SCALE, question="json_items"))
    assert first.images[0] is second.images[0]


@pytest.mark.parametrize("seed", [5, 6])
def test_a_chart_asked_twice_is_drawn_once_and_its_first_question_is_the_single_sample(seed):
    first, second = make_chart_samples(seed, [("value", True), ("json", False)], scale=RENDER_SCALE)
    assert _same(first, make_chart_sample(seed, scale=RENDER_SCALE, question="value", thinking=True))
    assert second.truth["question_kind"] == "json" and second.reasoning is None
    assert second.images[0] is first.images[0]
    # the second value question of a chart draws its own label after the first's
    a, b = make_chart_samples(seed, [("value", False), ("value", False)], scale=RENDER_SCALE)
    assert {a.truth["label"], b.truth["label"]} <= set(a.truth["labels"])


def _stub_generators(monkeypatch) -> list[tuple[str, str]]:
    """Generators that record which question each example asks, without rendering."""
    asked: list[tuple[str, str]] = []

    def fanned(task):
        def make(seed, questions, **kw):
            kinds = [q[0] if isinstance(q, tuple) else q for q in questions]
            asked.extend((task, k) for k in kinds)
            return [SimpleNamespace(task=task) for _ in kinds]
        return make

    monkeypatch.setattr(S, "make_document_samples", fanned("document"))
    monkeypatch.setattr(S, "make_chart_samples", fanned("chart"))
    monkeypatch.setattr(S, "render_video_sample", lambda seed, q: (SimpleNamespace(task="video"), [], [], []))
    for name, task in (("make_multi_image_sample", "multi_image"), ("make_reasoning_sample", "reasoning"),
                       ("make_text_tile_sample", "text_tile"), ("make_scene_tile_sample", "scene_tile"),
                       ("make_arithmetic_sample", "arithmetic"), ("make_comparison_sample", "comparison")):
        monkeypatch.setattr(S, name, lambda seed, _task=task, **kw: SimpleNamespace(task=_task, thinking=False))
    return asked


def test_every_task_keeps_its_share_of_the_examples(monkeypatch):
    _stub_generators(monkeypatch)
    mix = parse_mix("document=4,reasoning=3.5", None)

    def shares(k: int) -> dict[str, float]:
        counts = collections.Counter(ts.sample.task for seed in range(12000)
                                     for ts in draw_samples(seed, 2, Mix(mix.stage2, questions_per_image=k)))
        return {t: c / sum(counts.values()) for t, c in counts.items()}

    one, two = shares(1), shares(2)
    weights = mix.weights(2)
    for task, w in weights.items():
        want = w / sum(weights.values())
        assert abs(one[task] - want) < 0.15 * want and abs(two[task] - want) < 0.15 * want, (task, one, two, want)


def test_the_questions_of_one_draw_differ(monkeypatch):
    asked = _stub_generators(monkeypatch)
    for seed in range(400):
        before = len(asked)
        out = draw_samples(seed, 2, Mix(questions_per_image=2))
        mine = asked[before:]
        if mine:  # a page or chart: two examples, two different questions
            assert len(out) == 2 and len({k for _, k in mine}) == 2, mine
        else:
            assert len(out) == 1


def test_one_question_per_image_is_the_curriculum_draw_for_draw():
    for stage in (1, 2):
        for seed in range(25):  # deterministic: fixed seeds
            (a,), b = draw_samples(seed, stage, Mix()), draw_sample(seed, stage)
            assert _same(a.sample, b.sample) and a.thinking == b.thinking


def test_a_batch_is_full_and_reproducible_with_two_questions_per_image():
    cfg = preset_config(PRESET)
    tok = Tokenizer.from_file(str(BUNDLED_MODEL / "tokenizer.json"))

    def batch():
        stream = CurriculumStream(str(BUNDLED_MODEL), seed=0, batch_size=7, start=3, stage_of=StageSchedule(0, 0),
                                  image_size=cfg.force_image_size, max_tiles=cfg.max_num_tiles, mean=cfg.norm_mean,
                                  std=cfg.norm_std, mix=Mix(questions_per_image=2))
        return stream.batch(3, tok)

    a, b = batch(), batch()
    assert len(a) == 7 and [e.ids for e in a] == [e.ids for e in b]


@pytest.mark.parametrize("k", [0, -1, 1.5, True])
def test_a_question_count_below_one_or_not_whole_is_an_error(k):
    with pytest.raises(ValueError, match="questions-per-image"):
        parse_mix(None, None, k)


def test_recipe_refuses_a_bad_question_count_and_passes_a_good_one(capsys):
    from nanovl.train.recipe import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--out", "/tmp/never", "--questions-per-image", "0"])
    assert "--questions-per-image" in capsys.readouterr().err
    assert parse_args(["--out", "/tmp/never", "--questions-per-image", "2"]).curriculum_mix.questions_per_image == 2


def test_the_questions_of_one_page_share_its_tiles_cut_once():
    from nanovl.train.dataset import build_example
    from nanovl.train.samples import TrainSample

    cfg = preset_config(PRESET)
    tok = Tokenizer.from_file(str(BUNDLED_MODEL / "tokenizer.json"))
    kw = dict(image_size=cfg.force_image_size, max_tiles=cfg.max_num_tiles, mean=cfg.norm_mean, std=cfg.norm_std)
    first, second = (TrainSample(s, False) for s in make_document_samples(7, ["read", "total"], scale=RENDER_SCALE))
    tiles: dict = {}
    a, b = build_example(first, tok, tiles=tiles, **kw), build_example(second, tok, tiles=tiles, **kw)
    assert a.media[0].pixel_values is b.media[0].pixel_values and len(tiles) == 1
    alone = build_example(second, tok, **kw)
    assert torch.equal(alone.media[0].pixel_values, b.media[0].pixel_values) and alone.ids == b.ids
