"""The sampling kernels (nanovl/ops/sampling/kernel.py) against their reference twins: the filters'
kept sets and values, and the draw's tokens for the same seeds (run on the lent GPU:
`pytest tests/gpu -m gpu`; on the CPU in Triton's interpreter: `TRITON_INTERPRET=1 python
tests/gpu/test_gpu_sampling.py`).

The kernel sums the top-p mass in another order than the reference's cumsum, so a token whose mass
lands within rounding of top_p may go either way: the kernel's kept set must lie between the
reference's at top_p - EPS and at top_p + EPS (and min_p likewise), which is its exact set wherever
no token sits at the edge. The draw's noise is the same bits; only the float log may differ in the
last place, so two tokens whose scores tie to within 1e-5 may swap.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nanovl.ops.sampling.ref import (apply_temperature_top_k_top_p_min_p_ref, gumbel_scores_ref,  # noqa: E402
                                     sample_ref)

pytestmark = pytest.mark.gpu
EPS = 1e-5


def _logits(B: int, V: int, device) -> torch.Tensor:
    """Rows of different shapes: LM-like spread, flat, tied (integers), partly masked (a grammar)."""
    x = torch.randn(B, V, device=device) * torch.linspace(0.5, 6.0, B, device=device).reshape(B, 1)
    x[1 % B] = torch.randint(-3, 4, (V,), device=device).float()  # many exact ties
    if B > 2:
        x[2, torch.randperm(V, device=device)[: V // 2]] = float("-inf")
    if B > 3:
        x[3] = x[3] * 0.01  # nearly flat: the top-p set is most of the vocabulary
    return x


def _kept(x: torch.Tensor) -> torch.Tensor:
    return torch.isfinite(x)


def run_filters(device, B=8, V=5000):
    from nanovl.ops.sampling.kernel import apply_temperature_top_k_top_p_min_p_triton as fast

    torch.manual_seed(V)
    x = _logits(B, V, device)
    t = torch.tensor([0.6, 1.0, 0.0, 1.3, 0.8, 2.0, 0.7, 1.0][:B], device=device)
    p = torch.tensor([0.95, 0.5, 0.9, 1.0, 0.99, 0.3, 0.95, 0.8][:B], device=device)
    mp = torch.tensor([0.0, 0.05, 0.0, 0.1, 0.0, 0.0, 0.02, 0.0][:B], device=device)
    for top_p, min_p in ((p, mp), (p, None), (None, mp), (None, None)):
        out = fast(x, t, None, top_p, min_p)
        ref = apply_temperature_top_k_top_p_min_p_ref(x, t, None, top_p, min_p)
        # a bracket around the reference: top_p and min_p nudged by EPS each way
        lo = apply_temperature_top_k_top_p_min_p_ref(
            x, t, None, None if top_p is None else top_p - EPS, None if min_p is None else min_p * (1 + EPS) + EPS)
        hi = apply_temperature_top_k_top_p_min_p_ref(
            x, t, None, None if top_p is None else (top_p + EPS).clamp(max=1.0), None if min_p is None else min_p * (1 - EPS))
        k, k_lo, k_hi = _kept(out), _kept(lo), _kept(hi)
        assert out.shape == ref.shape and out.dtype == torch.float32
        assert (k_lo <= k).all() and (k <= k_hi).all(), f"kept set outside the bracket (top_p {top_p}, min_p {min_p})"
        # kept values are the temperature-scaled logits
        both = k & _kept(ref)
        torch.testing.assert_close(out[both], ref[both], rtol=1e-6, atol=0)
        exact = sum(bool(torch.equal(k[r], _kept(ref)[r])) for r in range(B))
        assert exact >= B - 1, f"only {exact} of {B} rows kept exactly the reference's set"
    # a greedy row is one-hot on its first maximum (ties included)
    assert _kept(fast(x, t, None, p, mp))[2].sum() == 1
    run_top_k(fast, x, t, p, mp)
    return float(exact)


def run_top_k(fast, x, t, p, mp):
    """Top-k counts tokens, so its set is exact (ties with the k-th kept: row 1 is all ties); with
    top-p after it, top-p's mass is that of the top-k set only, bracketed as above."""
    B, V = x.shape
    ks = [7, 1, 50, 0, 3000, V + 5, 2048, 2 ** 40][:B]  # 0 and k >= V: off; 2**40 must not wrap
    k_top = torch.tensor(ks, device=x.device)
    out = fast(x, t, k_top, None, None)
    ref = apply_temperature_top_k_top_p_min_p_ref(x, t, k_top, None, None)
    assert torch.equal(_kept(out), _kept(ref)), "top-k kept another set than the reference"
    torch.testing.assert_close(out[_kept(ref)], ref[_kept(ref)], rtol=1e-6, atol=0)
    assert _kept(out)[0].sum() == min(7, V) and _kept(out)[1].sum() >= 1
    for top_p, min_p in ((p, None), (p, mp)):
        out = fast(x, t, k_top, top_p, min_p)
        lo = apply_temperature_top_k_top_p_min_p_ref(
            x, t, k_top, top_p - EPS, None if min_p is None else min_p * (1 + EPS) + EPS)
        hi = apply_temperature_top_k_top_p_min_p_ref(
            x, t, k_top, (top_p + EPS).clamp(max=1.0), None if min_p is None else min_p * (1 - EPS))
        k, k_lo, k_hi = _kept(out), _kept(lo), _kept(hi)
        assert (k_lo <= k).all() and (k <= k_hi).all(), f"top-k then top-p outside the bracket (min_p {min_p})"
        ref = apply_temperature_top_k_top_p_min_p_ref(x, t, k_top, top_p, min_p)
        exact = sum(bool(torch.equal(k[r], _kept(ref)[r])) for r in range(B))
        assert exact >= B - 1, f"top-k + top-p: only {exact} of {B} rows kept exactly the reference's set"


def run_sample(device, B=16, V=5000):
    from nanovl.ops.sampling.kernel import sample_triton

    torch.manual_seed(B + V)
    x = apply_temperature_top_k_top_p_min_p_ref(_logits(B, V, device), torch.ones(B, device=device), None,
                                                torch.full((B,), 0.9, device=device), None)
    seeds = torch.randint(0, 2 ** 63 - 1, (B,), device=device)
    ids, want = sample_triton(x, seeds), sample_ref(x, seeds)
    assert ids.dtype == torch.long and ids.shape == (B,)
    scores = gumbel_scores_ref(x, seeds)
    for r in range(B):
        if ids[r] != want[r]:  # only a near tie may swap
            assert abs(float(scores[r, ids[r]] - scores[r, want[r]])) < 1e-5, (r, int(ids[r]), int(want[r]))
    assert torch.isfinite(x.gather(1, ids[:, None])).all()
    greedy = torch.arange(B, device=device) % 2 == 0
    g = sample_triton(x, seeds, greedy)
    assert torch.equal(g[greedy], x.argmax(dim=1)[greedy]) and torch.equal(g[~greedy], ids[~greedy])
    # the draw follows the distribution (4 binomial standard deviations)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05], device=device)
    n = 20000 if str(device).startswith("cuda") else 2000  # the interpreter runs a program at a time
    draws = sample_triton(probs.log().repeat(n, 1), torch.randint(0, 2 ** 62, (n,), device=device))
    freq = torch.bincount(draws, minlength=4).float() / n
    assert torch.all((freq - probs).abs() < 4 * torch.sqrt(probs * (1 - probs) / n)), freq
    return float((ids == want).float().mean())


@pytest.mark.parametrize("V", [1000, 5000, 131072])
def test_filters_keep_the_reference_set(V):
    run_filters("cuda", V=V)


@pytest.mark.parametrize("V", [1000, 5000, 131072])
def test_draw_gives_the_reference_tokens(V):
    run_sample("cuda", V=V)


def test_the_engine_sampler_uses_the_kernels_without_failures():
    from nanovl.engine.sampler import Sampler, SamplingRow
    from nanovl.ops.dispatch import kernel_failures
    from nanovl.sampling_params import SamplingParams

    logits = torch.randn(4, 3000, device="cuda")
    rows = [SamplingRow(SamplingParams(temperature=0.6, top_p=0.95, min_p=0.01), s, [], []) for s in range(4)]
    on_gpu = Sampler()(logits, rows).token_ids
    assert not {k: v for k, v in kernel_failures().items() if k.startswith("sampling")}
    assert Sampler()(logits, rows).token_ids == on_gpu  # the same seeds draw the same tokens


if __name__ == "__main__":  # interpreter-mode check on the CPU
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        from test_gpu_ops import _patch_interpreter  # the autotuner without a driver

        _patch_interpreter()
    for V in ((1000, 5000, 131072) if dev == "cuda" else (1000, 5000)):  # the interpreter is slow
        print(f"filters V={V}: rows exact {run_filters(dev, V=V):.0f}", flush=True)
        print(f"sample V={V}: ids equal {run_sample(dev, V=V):.3f}", flush=True)
