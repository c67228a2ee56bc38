"""bench/sweep_gemm_configs.py without a GPU: every candidate is timed on every case, a config that
cannot run is recorded rather than ending the sweep, and the summary picks the true minima."""
from __future__ import annotations

import pytest

from helpers import load_bench


@pytest.fixture(scope="module")
def sweep_mod():
    return load_bench("sweep_gemm_configs")


LISTED = {1: [(8, 512, 4, 2), (16, 512, 4, 2)], 16: [(16, 512, 4, 3)]}


def test_every_candidate_timed_and_the_summary_takes_the_minima(sweep_mod):
    timed = []

    def time_config(rows, n, k, cfg):
        timed.append((rows, n, cfg))
        if cfg == (128, 128, 8, 2):
            raise RuntimeError("out of resources: shared memory\nmore detail")
        # a made-up cost in which the extra (8, 256, 4, 2) wins at one row and the listed entry at 16
        return {(8, 256, 4, 2): 10.0, (16, 512, 4, 3): 5.0}.get(cfg, 20.0) + n / 1000

    shapes = [("a", 1000, 64), ("b", 3000, 64)]
    rows = sweep_mod.sweep(shapes, [1, 16], time_config, listed_for=LISTED.get)
    for r in (1, 16):
        n_cands = len(sweep_mod.candidates(r, LISTED[r]))
        assert n_cands == len(LISTED[r]) + len([c for c in (sweep_mod.GEMV_EXTRA if r == 1 else sweep_mod.DOT_EXTRA)
                                                if c not in LISTED[r]])
        assert sum(1 for t in timed if t[0] == r) == n_cands * len(shapes)
    failed = [r for r in rows if r["error"]]
    assert failed and all(r["config"] == "n128 k128 w8 s2" and r["us"] is None for r in failed)
    assert failed[0]["error"] == "RuntimeError: out of resources: shared memory"
    summary = {(s["shape"], s["M"]): s for s in sweep_mod.best_by_case(rows)}
    assert summary[("a", 1)]["best"] == "n8 k256 w4 s2" and summary[("a", 1)]["best_listed"] == "n8 k512 w4 s2"
    assert summary[("a", 1)]["gain"] == pytest.approx(21.0 / 11.0)
    assert summary[("b", 16)]["best"] == summary[("b", 16)]["best_listed"] == "n16 k512 w4 s3"
    assert summary[("b", 16)]["gain"] == 1.0


def test_extras_never_repeat_a_listed_config(sweep_mod):
    listed = [sweep_mod.GEMV_EXTRA[0]]
    cands = sweep_mod.candidates(1, listed)
    assert [c for c, _ in cands].count(sweep_mod.GEMV_EXTRA[0]) == 1 and cands[0] == (listed[0], True)
