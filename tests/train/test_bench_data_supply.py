"""bench/bench_data_supply.py runs, writes its JSON, and makes full batches at each question count."""
from __future__ import annotations

import json

import torch

from helpers import load_bench


def test_bench_writes_a_row_per_question_count(tmp_path, capsys):
    bench = load_bench("bench_data_supply")
    out = tmp_path / "supply.json"
    threads = torch.get_num_threads()
    try:
        assert bench.main(["--batches", "1", "--batch-size", "4", "--questions", "1,2", "--out", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # the bench sets its own; later tests keep theirs
    rows = json.loads(out.read_text())["rows"]
    assert [r["questions_per_image"] for r in rows] == [1, 2]
    assert all(r["examples"] == 4 == sum(r["tasks"].values()) and r["examples_per_s"] > 0 for r in rows)
    assert "steps/s fed by 15" in capsys.readouterr().out
