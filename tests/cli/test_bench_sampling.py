"""bench/bench_sampling.py on the CPU: the reference is timed per batch size and the JSON holds the
printed rows (the kernel columns need a GPU)."""
from __future__ import annotations

import json

from helpers import load_bench


def test_sampling_bench_times_each_batch_and_writes_json(tmp_path, capsys):
    mod = load_bench("bench_sampling")
    out = tmp_path / "sampling.json"
    mod.main(["--vocab", "512", "--batches", "1,3", "--reps", "2", "--out", str(out)])
    res = json.loads(out.read_text())
    assert [r["batch"] for r in res["rows"]] == [1, 3]
    assert all(r["reference_ms"] > 0 and "kernel_ms" not in r for r in res["rows"])
    assert "ref filter+draw" in capsys.readouterr().out


def test_sampling_bench_takes_a_top_k(tmp_path, capsys):
    mod = load_bench("bench_sampling")
    res = mod.main(["--vocab", "512", "--batches", "2", "--reps", "2", "--top-k", "50"])
    assert res["top_k"] == 50 and res["rows"][0]["reference_ms"] > 0
    assert "top_k 50" in capsys.readouterr().out
