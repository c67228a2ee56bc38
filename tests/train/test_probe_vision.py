"""The vision probe (`python -m nanovl.train.probe_vision`): the probe finds a label that the
features carry and stays near chance on features that carry none."""
from __future__ import annotations

import numpy as np
import torch

from nanovl.train.data import videos as V
from nanovl.train.probe_vision import one_object_frames, probe, probe_accuracy


def test_probe_reads_a_carried_label_and_not_noise():
    gen = torch.Generator().manual_seed(1)
    labels = torch.randint(0, 4, (300,), generator=gen)
    noise = torch.randn(300, 32, generator=gen)
    carried = noise.clone()
    carried[:, :4] += 5.0 * torch.nn.functional.one_hot(labels, 4)
    assert probe_accuracy(carried, labels, 4, train=200) > 0.95
    assert probe_accuracy(noise, labels, 4, train=200) < 0.5  # chance is 0.25


def test_frames_show_the_labelled_colour():
    frames, colour, shape = one_object_frames(12)
    names = list(V.COLORS)
    for f, c in zip(frames, colour.tolist()):
        px = np.asarray(f).reshape(-1, 3)
        assert (px == V.COLORS[names[c]]).all(axis=1).sum() > 100
    assert set(shape.tolist()) <= set(range(len(V.SHAPES)))


def test_probe_runs_on_a_model():
    # a random ViT already separates four flat colours; the figures are accuracies
    r = probe(None, n=90)
    assert set(r) == {"colour", "shape"} and all(0.0 <= v <= 1.0 for v in r.values())
    assert r["colour"] > 0.5
