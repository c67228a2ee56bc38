"""Sampling ops on hand-made logits: penalties, filters, greedy, seeds, logprobs.

Run: pytest tests/text/test_sampling_ops.py
"""
from __future__ import annotations

import math
import random

import pytest
import torch

from nanovl.ops.sampling import apply_penalties, apply_temperature_top_k_top_p_min_p, compute_logprobs, sample

NEG_INF = float("-inf")


def _filter(logits, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0):
    B = logits.shape[0]
    full = lambda v, dt=torch.float32: torch.full((B,), v, dtype=dt)  # noqa: E731
    return apply_temperature_top_k_top_p_min_p(logits, full(temperature), full(top_k, torch.long),
                                               full(top_p), full(min_p))


def _kept(filtered):
    return [torch.isfinite(row).nonzero().flatten().tolist() for row in filtered]


PROBS = torch.tensor([[0.5, 0.3, 0.15, 0.05]]).log()


@pytest.mark.parametrize("top_p,kept", [(0.4, [0]), (0.75, [0, 1]), (0.85, [0, 1, 2]), (1.0, [0, 1, 2, 3])])
def test_top_p_keeps_smallest_prefix_reaching_mass(top_p, kept):
    assert _kept(_filter(PROBS, top_p=top_p)) == [kept]


@pytest.mark.parametrize("min_p,kept", [(0.0, [0, 1, 2, 3]), (0.2, [0, 1, 2]), (0.5, [0, 1]), (0.9, [0])])
def test_min_p_drops_tokens_below_fraction_of_max(min_p, kept):
    # thresholds: 0.2 * 0.5 = 0.1 drops 0.05; 0.5 * 0.5 = 0.25 drops 0.15
    assert _kept(_filter(PROBS, min_p=min_p)) == [kept]


def test_top_k_and_temperature():
    logits = torch.tensor([[1.0, 4.0, 2.0, 4.0, -3.0]])
    assert _kept(_filter(logits, top_k=2)) == [[1, 3]]
    assert _kept(_filter(logits, top_k=3)) == [[1, 2, 3]]
    out = _filter(logits, temperature=2.0, top_k=3)
    assert torch.equal(out[0, [1, 2, 3]], torch.tensor([2.0, 1.0, 2.0]))


def test_filters_differ_per_row():
    logits = PROBS.repeat(3, 1)
    out = apply_temperature_top_k_top_p_min_p(
        logits, torch.tensor([1.0, 1.0, 0.5]), torch.tensor([0, 1, 0]), torch.tensor([0.75, 1.0, 1.0]),
        torch.tensor([0.0, 0.0, 0.2]))
    assert _kept(out) == [[0, 1], [0], [0, 1]]  # row 2: T=0.5 squares probs -> 0.15^2/0.5^2 < 0.2


def test_a_filter_passed_as_none_equals_its_neutral_setting():
    torch.manual_seed(4)
    logits = torch.randn(5, 64) * 3
    t = torch.tensor([0.7, 1.0, 1.3, 0.0, 2.0])
    k, p, m = torch.tensor([0, 5, 0, 0, 9]), torch.tensor([1.0, 0.9, 0.5, 1.0, 1.0]), torch.tensor([0.0, 0.1, 0.0, 0.0, 0.3])
    full = apply_temperature_top_k_top_p_min_p(logits, t, k, p, m)
    zeros = torch.zeros(5)
    assert torch.equal(apply_temperature_top_k_top_p_min_p(logits, t, None, p, m),
                       apply_temperature_top_k_top_p_min_p(logits, t, zeros.long(), p, m))
    assert torch.equal(apply_temperature_top_k_top_p_min_p(logits, t, k, None, m),
                       apply_temperature_top_k_top_p_min_p(logits, t, k, torch.ones(5), m))
    assert torch.equal(apply_temperature_top_k_top_p_min_p(logits, t, k, p, None),
                       apply_temperature_top_k_top_p_min_p(logits, t, k, p, zeros))
    # and None really switches the filter off (these knobs do drop tokens when given)
    assert not torch.equal(apply_temperature_top_k_top_p_min_p(logits, t, None, None, None), full)


def test_greedy_rows_take_argmax_even_with_generators():
    torch.manual_seed(1)
    logits = torch.randn(8, 50)
    ids = sample(_filter(logits, temperature=0.0), torch.arange(8))
    assert torch.equal(ids, logits.argmax(dim=1))
    ids = sample(_filter(logits, temperature=1.0), torch.arange(8), greedy=torch.ones(8, dtype=torch.bool))
    assert torch.equal(ids, logits.argmax(dim=1))


def test_top_k_one_equals_greedy():
    torch.manual_seed(2)
    logits = torch.randn(16, 100) * 0.1
    for _ in range(5):
        seeds = torch.randint(0, 2 ** 62, (16,))
        assert torch.equal(sample(_filter(logits, temperature=1.5, top_k=1), seeds), logits.argmax(dim=1))


def _seeded_run(seed, others, steps=20, V=64):
    """Tokens of a seeded row inside a batch whose other rows change every run."""
    logits_rng = torch.Generator().manual_seed(99)
    rng = random.Random(seed)  # the request's own RNG, as RequestState draws each step's seed
    out = []
    for _ in range(steps):
        row = torch.randn(1, V, generator=logits_rng)
        batch = torch.cat([torch.randn(others, V), row, torch.randn(others, V)])
        seeds = torch.randint(0, 2 ** 62, (2 * others + 1,))
        seeds[others] = rng.getrandbits(63)
        out.append(int(sample(_filter(batch), seeds)[others]))
    return out


def test_seed_reproduces_regardless_of_batch_and_differs_across_seeds():
    alone = _seeded_run(123, others=0)
    assert _seeded_run(123, others=3) == alone
    assert _seeded_run(123, others=5) == alone
    assert _seeded_run(124, others=0) != alone


def test_sample_follows_the_distribution():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 40000
    ids = sample(probs.log().repeat(n, 1), torch.randint(0, 2 ** 62, (n,)))
    freq = torch.bincount(ids, minlength=4).float() / n
    # 4 binomial standard deviations at most
    tol = 4 * torch.sqrt(probs * (1 - probs) / n)
    assert torch.all((freq - probs).abs() < tol), freq


def test_sample_never_picks_filtered_tokens():
    logits = _filter(torch.randn(200, 30), top_k=3)
    ids = sample(logits, torch.randint(0, 2 ** 62, (200,)))
    assert torch.isfinite(logits.gather(1, ids[:, None])).all()


def test_penalties_on_hand_made_logits():
    logits = torch.tensor([[2.0, -1.0, 0.5, 3.0], [2.0, -1.0, 0.5, 3.0]])
    prev = [[0, 1, 1], []]
    rep = apply_penalties(logits, prev, torch.tensor([2.0, 2.0]), torch.zeros(2), torch.zeros(2))
    assert torch.equal(rep, torch.tensor([[1.0, -2.0, 0.5, 3.0], [2.0, -1.0, 0.5, 3.0]]))
    pres = apply_penalties(logits, prev, torch.ones(2), torch.tensor([0.5, 0.5]), torch.zeros(2))
    assert torch.equal(pres[0], torch.tensor([1.5, -1.5, 0.5, 3.0]))
    freq = apply_penalties(logits, prev, torch.ones(2), torch.zeros(2), torch.tensor([0.25, 0.25]))
    assert torch.equal(freq[0], torch.tensor([1.75, -1.5, 0.5, 3.0]))
    both = apply_penalties(logits, prev, torch.tensor([2.0, 1.0]), torch.tensor([0.5, 0.0]), torch.tensor([0.25, 0.0]))
    # token 0: 2/2 - 0.5 - 0.25; token 1: -1*2 - 0.5 - 2*0.25
    assert torch.equal(both[0], torch.tensor([0.25, -3.0, 0.5, 3.0]))
    assert torch.equal(both[1], logits[1]) and torch.equal(logits[0], torch.tensor([2.0, -1.0, 0.5, 3.0]))


def test_compute_logprobs_hand_made():
    logits = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])
    chosen, top, top_ids = compute_logprobs(logits, torch.tensor([1]), 2)
    assert chosen.item() == pytest.approx(math.log(0.3), abs=1e-6)
    assert top_ids.tolist() == [[0, 1]]
    assert top[0].tolist() == pytest.approx([math.log(0.5), math.log(0.3)], abs=1e-6)
    chosen, top, top_ids = compute_logprobs(logits * 0, torch.tensor([2]), 0)
    assert chosen.item() == pytest.approx(math.log(1 / 3), abs=1e-6) and top.shape == (1, 0) == top_ids.shape


def test_sample_rejects_wrong_seed_count():
    with pytest.raises(ValueError, match="one seed per row"):
        sample(torch.zeros(2, 4), torch.tensor([1]))


def test_top_p_keeps_the_tokens_tied_with_the_last_one_kept():
    # masses 0.4, 0.2, 0.2, 0.2: top_p 0.5 needs the first and one 0.2 token, and its two twins stay
    logits = torch.tensor([[0.4, 0.2, 0.2, 0.2]]).log()
    assert _kept(_filter(logits, top_p=0.5)) == [[0, 1, 2, 3]]
    logits = torch.tensor([[0.4, 0.3, 0.2, 0.1]]).log()
    assert _kept(_filter(logits, top_p=0.5)) == [[0, 1]]


def test_the_32_bit_multiply_of_the_noise_hash_wraps_like_uint32():
    from nanovl.ops.sampling.ref import _mul32

    rng = random.Random(0)
    xs = [rng.getrandbits(32) for _ in range(1000)] + [0, 1, 2 ** 32 - 1]
    for m in (0x7FEB352D, 0x846CA68B, 2 ** 32 - 1):
        got = _mul32(torch.tensor(xs), m).tolist()
        assert got == [(x * m) % 2 ** 32 for x in xs]


def test_the_noise_is_uniform_per_seed_and_column_and_repeats_for_a_seed():
    from nanovl.ops.sampling import uniform_noise_ref

    seeds = torch.tensor([0, 1, 2 ** 62 + 5, 2 ** 63 - 1])
    u = uniform_noise_ref(seeds, 50000)
    assert u.shape == (4, 50000) and u.dtype == torch.float32
    assert (u > 0).all() and (u < 1).all()
    # mean 1/2 and variance 1/12 to within 5 standard errors; no two rows alike
    assert ((u.mean(dim=1) - 0.5).abs() < 5 * (1 / 12 / 50000) ** 0.5).all()
    assert ((u.var(dim=1) - 1 / 12).abs() < 0.002).all()
    assert all(not torch.equal(u[i], u[j]) for i in range(4) for j in range(i))
    # a pure function of (seed, column): a row alone or in another batch gets the same noise
    assert torch.equal(uniform_noise_ref(seeds[2:3], 50000)[0], u[2])
    assert torch.equal(uniform_noise_ref(seeds[2:3], 100)[0], u[2, :100])
    # neighbouring columns and seeds are not correlated
    assert abs(torch.corrcoef(torch.stack([u[0, :-1], u[0, 1:]]))[0, 1]) < 0.02
    assert abs(torch.corrcoef(u[:2])[0, 1]) < 0.02
