"""bench/graph_capture_cost.py on the CPU (tiny preset, the capture run eagerly): every bucket is
timed alone and in the sets the runner captures, and the JSON holds what the table printed."""
from __future__ import annotations

import json

from helpers import load_bench


def test_capture_cost_times_each_bucket_and_each_set(tmp_path, capsys):
    mod = load_bench("graph_capture_cost")
    out = tmp_path / "capture.json"
    mod.main(["--max-bucket", "4", "--capacity", "32", "--out", str(out)])
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["preset"] == "tiny" and res["capacity"] == 32
    assert [r["bucket"] for r in res["alone"]] == [1, 2, 4]
    assert [r["buckets"] for r in res["sets"]] == [[1], [1, 2], [1, 2, 4]]
    assert all(r["cold_s"] > 0 and r["again_s"] > 0 for r in res["alone"])
    assert all(r["again_s"] > 0 for r in res["sets"])
    assert "1,2,4" in printed and "b4" in printed
