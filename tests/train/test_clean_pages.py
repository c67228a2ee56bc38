"""`--clean-pages S`: a share of the document and sums pages is drawn without rotation or noise, as
born-digital pages are, and nothing else about the stream changes."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import nanovl.train.samples as S
from nanovl.train.data.documents import make_document_sample
from nanovl.train.samples import RENDER_SCALE, Mix, draw_samples, parse_mix


def _record_augment(monkeypatch) -> list[tuple[str, bool]]:
    """Page generators that record the task and `augment` of each draw, without rendering."""
    seen: list[tuple[str, bool]] = []

    def documents(seed, kinds, *, augment=True, **kw):
        seen.append(("document", augment))
        return [SimpleNamespace(task="document") for _ in kinds]

    def sums(seed, *, augment=True, **kw):
        seen.append(("reasoning", augment))
        return SimpleNamespace(task="reasoning", thinking=True)

    monkeypatch.setattr(S, "make_document_samples", documents)
    monkeypatch.setattr(S, "make_reasoning_sample", sums)
    return seen


def _draws(mix: Mix, n: int = 3000) -> list[str]:
    """The task of every example of n draws of a mix of pages only, with mix's share and question count."""
    weights = {"document": 1.0, "reasoning": 1.0}
    return [ts.sample.task for seed in range(n)
            for ts in draw_samples(seed, 2, Mix(tuple(sorted(weights.items())), clean_page_share=mix.clean_page_share,
                                                questions_per_image=mix.questions_per_image))]


@pytest.mark.parametrize("share", [0.0, 0.3, 1.0])
def test_the_share_of_clean_pages_is_the_one_asked_for(monkeypatch, share):
    seen = _record_augment(monkeypatch)
    _draws(Mix(clean_page_share=share))
    for task in ("document", "reasoning"):
        flags = [a for t, a in seen if t == task]
        clean = flags.count(False) / len(flags)
        assert len(flags) > 1000 and abs(clean - share) < 0.04, (task, clean)


def test_a_clean_share_changes_no_other_draw(monkeypatch):
    _record_augment(monkeypatch)
    # the tasks and (with two questions per page) the question counts are drawn as before
    assert _draws(Mix(clean_page_share=0.5, questions_per_image=2)) == _draws(Mix(questions_per_image=2))


def test_a_clean_draw_is_the_unaugmented_page():
    mix = Mix((("document", 1.0),), clean_page_share=1.0)
    seed = 11
    (ts,) = draw_samples(seed, 2, mix)
    kind = ts.sample.truth["question_kind"]
    clean = make_document_sample(seed, scale=RENDER_SCALE, augment=False, question=kind)
    noisy = make_document_sample(seed, scale=RENDER_SCALE, question=kind)
    page = np.asarray(ts.sample.images[0])
    assert np.array_equal(page, np.asarray(clean.images[0])) and not np.array_equal(page, np.asarray(noisy.images[0]))


@pytest.mark.parametrize("share", [-0.1, 1.5, float("nan"), True, "0.5"])
def test_a_share_outside_zero_to_one_is_an_error(share):
    with pytest.raises(ValueError, match="clean-pages"):
        parse_mix(None, None, 1, share)


def test_recipe_refuses_a_bad_share_and_passes_a_good_one(capsys):
    from nanovl.train.recipe import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--out", "/tmp/never", "--clean-pages", "2"])
    assert "--clean-pages" in capsys.readouterr().err
    assert parse_args(["--out", "/tmp/never", "--clean-pages", "0.25"]).curriculum_mix.clean_page_share == 0.25
