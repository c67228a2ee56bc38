"""Task mixture: deterministic order, weights respected, held-out seeds disjoint from training seeds."""
from __future__ import annotations

import collections

import pytest

from nanovl.train.data import mixture
from nanovl.train.data.common import Sample
from nanovl.train.data.mixture import HELD_OUT_SEED_OFFSET, example_seed, held_out_dataset, make_dataset

ALL = {"document": 1, "chart": 1, "multi_image": 1, "reasoning": 1, "video": 1}


@pytest.fixture
def stub_tasks(monkeypatch):
    """Replace every generator by a recorder, so mixing logic is tested without rendering."""
    for name in list(mixture.TASKS):
        monkeypatch.setitem(mixture.TASKS, name,
                            lambda seed, workdir, audio, name=name: Sample(name, [], str(seed), {}, seed=seed))


def test_real_samples_are_deterministic(tmp_path):
    a = list(make_dataset(ALL, 6, 3, tmp_path / "a", audio=False))
    b = list(make_dataset(ALL, 6, 3, tmp_path / "b", audio=False))
    c = list(make_dataset(ALL, 6, 4, tmp_path / "c", audio=False))
    assert [(s.task, s.target, s.truth) for s in a] == [(s.task, s.target, s.truth) for s in b]
    assert [s.target for s in a] != [s.target for s in c]
    assert [s.seed for s in a] == [example_seed(3, i) for i in range(6)]


def test_weights_are_respected(stub_tasks, tmp_path):
    counts = collections.Counter(s.task for s in make_dataset({"document": 3, "chart": 1, "video": 0}, 2000, 0,
                                                              tmp_path))
    assert counts["video"] == 0
    assert 0.70 < counts["document"] / 2000 < 0.80


def test_held_out_seeds_never_meet_training_seeds(stub_tasks, tmp_path):
    train = {s.seed for seed in range(3) for s in make_dataset(ALL, 500, seed, tmp_path)}
    held = {s.seed for seed in range(3) for s in held_out_dataset(ALL, 500, seed, tmp_path)}
    assert len(train) == len(held) == 1500 and not train & held
    assert min(held) >= example_seed(HELD_OUT_SEED_OFFSET, 0)


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError, match="unknown tasks"):
        make_dataset({"pdf": 1}, 1, 0, tmp_path)
    with pytest.raises(ValueError, match="positive sum"):
        make_dataset({"chart": 0}, 1, 0, tmp_path)
    with pytest.raises(ValueError, match="training seeds"):
        make_dataset(ALL, 1, HELD_OUT_SEED_OFFSET, tmp_path)
