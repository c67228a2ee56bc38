"""The recipe's LR schedule over training seconds: cosine over the whole budget by default, or the
peak held until the last `--decay-fraction` of it (so a late stage still trains at full LR)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from nanovl.train.recipe import lr_at, parse_args


def _args(**kw):
    return SimpleNamespace(**{"lr": 1.0, "warmup": 10, "time_budget": 100.0, "decay_fraction": 1.0, **kw})


def test_default_is_a_cosine_over_the_whole_budget():
    a = _args()
    assert lr_at(a, 100, 0.0) == pytest.approx(1.0)
    assert lr_at(a, 100, 50.0) == pytest.approx(0.05 + 0.95 * 0.5)
    assert lr_at(a, 100, 100.0) == pytest.approx(0.05)
    assert lr_at(a, 100, 500.0) == pytest.approx(0.05)  # past the budget: the floor


def test_decay_fraction_holds_the_peak_then_falls_over_the_last_part():
    a = _args(decay_fraction=0.3)
    for t in (0.0, 40.0, 69.9):
        assert lr_at(a, 100, t) == pytest.approx(1.0)
    assert lr_at(a, 100, 85.0) == pytest.approx(0.05 + 0.95 * 0.5)  # halfway through the decay
    assert lr_at(a, 100, 100.0) == pytest.approx(0.05)
    # later in the run, the held schedule is never below the cosine one
    assert all(lr_at(a, 100, t) >= lr_at(_args(), 100, t) - 1e-12 for t in range(0, 101, 5))


def test_warmup_scales_a_fresh_optimizers_first_steps():
    a = _args(decay_fraction=0.3)
    assert lr_at(a, 0, 50.0) == pytest.approx(0.1) and lr_at(a, 4, 50.0) == pytest.approx(0.5)


def test_flag_default_keeps_the_shipped_runs_schedule():
    assert parse_args(["--out", "x"]).decay_fraction == 1.0
    assert parse_args(["--out", "x", "--decay-fraction", "0.25"]).decay_fraction == 0.25
