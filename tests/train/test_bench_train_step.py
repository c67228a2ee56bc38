"""bench/bench_train_step.py runs on the CPU: real training steps on a stage-2 batch, a table and a JSON."""
from __future__ import annotations

import json

from helpers import load_bench


def test_train_step_bench_times_real_steps(tmp_path, capsys):
    mod = load_bench("bench_train_step")
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
