"""The engine's Sampler against the sampling ops it drives: greedy rows skip the filters and the
draw, drawn rows get exactly the ops' tokens, and the filters a batch does not use are skipped.

Run: pytest tests/engine/test_sampler.py
"""
from __future__ import annotations

import torch

from nanovl.engine.sampler import Sampler, SamplingRow
from nanovl.ops.sampling import apply_temperature_top_k_top_p_min_p, compute_logprobs, sample
from nanovl.sampling_params import SamplingParams

V = 97


def _row(params: SamplingParams, seed: int = 0, allowed=None) -> SamplingRow:
    return SamplingRow(params, seed, [1, 2], [3], allowed)


def _by_the_ops(logits: torch.Tensor, rows: list[SamplingRow], seeds: list[int]) -> list[int]:
    """Every row through the filters with all knobs given, then the draw (the path before the fast one)."""
    ps = [r.params for r in rows]
    filtered = apply_temperature_top_k_top_p_min_p(
        logits, torch.tensor([p.temperature for p in ps]), torch.tensor([p.top_k for p in ps]),
        torch.tensor([p.top_p for p in ps]), torch.tensor([p.min_p for p in ps]))
    return sample(filtered, torch.tensor(seeds), greedy=torch.tensor([p.is_greedy for p in ps])).tolist()


def test_mixed_batch_equals_the_ops_on_every_row():
    torch.manual_seed(0)
    logits = torch.randn(6, V) * 2
    params = [SamplingParams(temperature=0), SamplingParams(temperature=0.8, top_p=0.9),
              SamplingParams(temperature=1.0), SamplingParams(temperature=1.2, top_k=5),
              SamplingParams(temperature=0.7, min_p=0.05, top_k=1), SamplingParams(temperature=1.0, top_k=20)]
    seeds = [10, 11, 12, 13, 14, 15]
    got = Sampler()(logits, [_row(p, s) for p, s in zip(params, seeds)]).token_ids
    # a row's draw depends on its own seed only, so the greedy rows' skipped draws change nothing
    assert got == _by_the_ops(logits, [_row(p) for p in params], seeds)
    assert got[0] == int(logits[0].argmax()) and got[4] == int(logits[4].argmax())


def test_all_drawn_rows_with_default_knobs_equal_the_ops():
    torch.manual_seed(1)
    logits = torch.randn(4, V)
    params = [SamplingParams(temperature=1.0)] * 4
    got = Sampler()(logits, [_row(p, 30 + i) for i, p in enumerate(params)]).token_ids
    assert got == _by_the_ops(logits, [_row(p) for p in params], [30, 31, 32, 33])


def test_greedy_respects_the_grammar_mask_and_leaves_the_logits_alone():
    torch.manual_seed(2)
    logits = torch.randn(2, V)
    before = logits.clone()
    allowed = torch.zeros(V, dtype=torch.bool)
    allowed[[4, 40, 77]] = True
    out = Sampler()(logits, [_row(SamplingParams(temperature=0), allowed=allowed),
                             _row(SamplingParams(temperature=0, logprobs=2))])
    assert out.token_ids[0] == [4, 40, 77][int(logits[0, [4, 40, 77]].argmax())]
    assert out.token_ids[1] == int(logits[1].argmax())
    assert torch.equal(logits, before)
    chosen, top_lp, top_ids = compute_logprobs(logits[1:], logits[1:].argmax(dim=1), 2)
    lp = out.logprobs[1]
    assert out.logprobs[0] is None
    assert lp.token_id == out.token_ids[1] and abs(lp.logprob - float(chosen[0])) < 1e-6
    assert [t for t, _ in lp.top] == top_ids[0].tolist()


def test_unused_filters_are_not_run(monkeypatch):
    import nanovl.engine.sampler as sampler_mod

    seen = []

    def spy(x, temperature, top_k, top_p, min_p):
        seen.append((top_k is None, top_p is None, min_p is None))
        return apply_temperature_top_k_top_p_min_p(x, temperature, top_k, top_p, min_p)

    monkeypatch.setattr(sampler_mod, "apply_temperature_top_k_top_p_min_p", spy)
    logits = torch.randn(3, V)
    Sampler()(logits, [_row(SamplingParams(temperature=0))] * 3)
    assert seen == []  # all greedy: no filter at all
    Sampler()(logits[:2], [_row(SamplingParams(temperature=1.0)), _row(SamplingParams(temperature=0.5, top_p=0.8))])
    assert seen == [(True, False, True)]
