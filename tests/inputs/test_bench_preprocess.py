"""bench/bench_preprocess.py runs, writes its JSON, and finds the tiler equal to its twin."""
from __future__ import annotations

import json

import torch

from helpers import load_bench


def test_bench_writes_a_row_per_case(tmp_path, capsys):
    bench = load_bench("bench_preprocess")
    out = tmp_path / "pre.json"
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--repeats", "1", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # the bench sets its own; later tests keep theirs
    rows = json.loads(out.read_text())["rows"]
    assert [r["case"] for r in rows] == [c[0] for c in bench.CASES]
    assert all(r["bit_equal"] and r["ms"] > 0 and r["tiles"] == 13 - 3 * (r["tile"] == 128) for r in rows)
    assert "speedup" in capsys.readouterr().out
