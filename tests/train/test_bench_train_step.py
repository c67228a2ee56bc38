"""bench/bench_train_step.py runs on the CPU: real training steps on a stage-2 batch, a table and a JSON."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "bench_train_step.py"


def test_train_step_bench_times_real_steps(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("bench_train_step", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "steps.json"
    rows = mod.main(["--batch-sizes", "1,3", "--steps", "1", "--warmup", "0", "--device", "cpu", "--out", str(out)])
    assert [r["batch"] for r in rows] == [1, 3]
    for r in rows:
        assert "error" not in r, r
        # a step of the tiny VL model is hundreds of operators and takes measurable time
        assert r["step_s"] > 0 and r["aten_ops"] > 100
    assert rows[-1]["tiles"] > 0
    assert json.loads(out.read_text())["rows"] == rows
    assert "samples/s" in capsys.readouterr().out
