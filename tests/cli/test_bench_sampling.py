"""bench/bench_sampling.py on the CPU: the reference is timed per batch size and the JSON holds the
printed rows (the kernel columns need a GPU)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "bench_sampling.py"


def test_sampling_bench_times_each_batch_and_writes_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_sampling", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "sampling.json"
    mod.main(["--vocab", "512", "--batches", "1,3", "--reps", "2", "--out", str(out)])
    res = json.loads(out.read_text())
    assert [r["batch"] for r in res["rows"]] == [1, 3]
    assert all(r["reference_ms"] > 0 and "kernel_ms" not in r for r in res["rows"])
    assert "ref filter+draw" in capsys.readouterr().out
