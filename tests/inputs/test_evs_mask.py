"""EVS retention mask and counts (SPEC Part F); run: pytest tests/inputs/test_evs_mask.py"""
from __future__ import annotations

import math

import pytest
import torch

from nanovl.inputs.evs import per_frame_counts, prune_video_embeds, retained_count, retention_mask
from nanovl.inputs.media_prompt import video_placeholder


@pytest.mark.parametrize("t,f,q,expected", [
    (256, 10, 0.75, 640),    # 2560 * 0.25
    (256, 4, 0.75, 256),     # 1024 * 0.25 = 256 = one frame
    (256, 3, 0.75, 256),     # 192 < 256: floor of one whole frame
    (256, 1, 0.5, 256),
    (256, 16, 0.7, 1228),    # 4096 * 0.3 = 1228.8 -> 1228
    (256, 128, 0.0, 32768),  # q = 0 keeps all
    (6, 4, 0.25, 18),
])
def test_retained_count(t, f, q, expected):
    assert retained_count(t, f, q) == expected


@pytest.mark.parametrize("q", [1.0, 1.5, -0.1, math.nan])
def test_rate_out_of_range(q):
    with pytest.raises(ValueError):
        retained_count(256, 4, q)
    with pytest.raises(ValueError):
        retention_mask(torch.randn(2, 3, 4), q)


def brute_force_mask(embeds, q):
    """Loops in float64: dissimilarity per token, sort by (-dissim, index), keep the first K."""
    f, t, _ = embeds.shape
    e = embeds.double()
    keys = []
    for i in range(f):
        for j in range(t):
            if i == 0:
                dissim = 255.0
            else:
                a, b = e[i, j], e[i - 1, j]
                dissim = 1.0 - float((a @ b) / (a.norm() * b.norm()))
            keys.append((-dissim, i * t + j))
    k = max(t, int(t * f * (1 - q)))
    kept = {index for _, index in sorted(keys)[:k]}
    return torch.tensor([n in kept for n in range(f * t)])


@pytest.mark.parametrize("q", [0.0, 0.3, 0.5, 0.7, 0.75, 0.9])
def test_mask_matches_brute_force(q):
    embeds = torch.randn(7, 9, 16)
    mask = retention_mask(embeds, q)
    assert mask.dtype == torch.bool and mask.shape == (63,)
    assert torch.equal(mask, brute_force_mask(embeds, q))
    assert int(mask.sum()) == retained_count(9, 7, q)
    assert mask[:9].all(), "frame 0 must be kept whole"


def test_q_zero_keeps_everything():
    assert retention_mask(torch.randn(5, 4, 8), 0.0).all()


def test_repeated_frame_pruned_first():
    embeds = torch.randn(4, 6, 32)
    # frame 2 repeats frame 1 (scaled: cosine similarity is 1, so dissimilarity 0)
    embeds[2] = 3.0 * embeds[1]
    mask = retention_mask(embeds, 0.25)  # K = 18 of 24: exactly one frame goes
    assert per_frame_counts(mask, 4) == [6, 6, 0, 6]


def test_ties_keep_earlier_tokens():
    # all frames equal, tokens scaled one-hot vectors so that cosine similarity is exactly 1:
    # every later token has dissimilarity 0; K = 6 of 12 keeps frame 0 and then the first two
    # tokens of frame 1 (stable order)
    embeds = (torch.eye(4, 8) * torch.arange(1.0, 5.0).view(4, 1)).repeat(3, 1, 1)
    mask = retention_mask(embeds, 0.5)
    expected = [True] * 4 + [True, True, False, False] + [False] * 4
    assert mask.tolist() == expected


def test_prune_keeps_original_order_and_counts():
    embeds = torch.randn(5, 4, 8)
    kept, counts = prune_video_embeds(embeds, 0.6)
    mask = brute_force_mask(embeds, 0.6)
    rows = [n for n in range(20) if mask[n]]
    assert torch.equal(kept, embeds.reshape(20, 8)[rows])
    assert sum(counts) == kept.shape[0] == retained_count(4, 5, 0.6)
    assert counts == [sum(mask[i * 4:(i + 1) * 4].tolist()) for i in range(5)]


def test_counts_drive_the_prompt():
    embeds = torch.randn(6, 16, 8)
    embeds[3] = embeds[2]
    mask = retention_mask(embeds, 0.7)
    counts = per_frame_counts(mask, 6)
    assert sum(counts) == int(mask.sum()) == retained_count(16, 6, 0.7)
    text = video_placeholder([0.5 * i for i in range(6)], counts)
    assert text.count("<image>") == int(mask.sum())
    lines = text.split("\n")
    assert len(lines) == 6
    for i, (line, n) in enumerate(zip(lines, counts)):
        assert line.startswith(f"Frame {i + 1} sampled at {0.5 * i:.2f} seconds: <img>")
        assert line.count("<image>") == n and line.endswith("</img>")


def test_bf16_input_and_shape_errors():
    embeds = torch.randn(3, 4, 8).bfloat16()
    assert int(retention_mask(embeds, 0.5).sum()) == 6
    with pytest.raises(ValueError):
        retention_mask(torch.randn(12, 8), 0.5)
    with pytest.raises(ValueError):
        per_frame_counts(torch.ones(10, dtype=torch.bool), 3)
