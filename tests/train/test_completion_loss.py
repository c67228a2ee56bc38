"""The training loss: a token mean, or with a token cap a mean in which no example counts as more
than the cap's worth of tokens (CPU, synthetic logits)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nanovl.train.collate import IGNORE, completion_loss


def _batch():
    torch.manual_seed(0)
    logits = torch.randn(2, 6, 5)
    labels = torch.randint(0, 5, (2, 6))
    labels[0, :5] = IGNORE  # example 0 trains 1 token, example 1 trains 6
    return logits, labels


def test_plain_loss_is_the_token_mean():
    logits, labels = _batch()
    mask = labels != IGNORE
    assert torch.allclose(completion_loss(logits, labels), F.cross_entropy(logits[mask], labels[mask]))
    # a cap no example reaches changes nothing
    assert torch.allclose(completion_loss(logits, labels, token_cap=6), completion_loss(logits, labels))


def test_cap_weighs_a_long_example_as_cap_tokens():
    logits, labels = _batch()
    ce = F.cross_entropy(logits.transpose(1, 2), labels.clamp_min(0), reduction="none")
    short, long_mean = ce[0, 5], ce[1].mean()
    # cap 2: example 1's six tokens count as two, example 0's one token as one
    want = (short + 2 * long_mean) / 3
    assert completion_loss(logits, labels, token_cap=2) == pytest.approx(float(want), rel=1e-5)
    # the plain mean lets the long example dominate: 6 of 7 parts
    assert completion_loss(logits, labels) == pytest.approx(float((short + 6 * long_mean) / 7), rel=1e-5)
