"""bench/bench_evs.py runs on the bundled model, writes its JSON, and prunes the share of video
tokens that each rate q asks for."""
from __future__ import annotations

import json

from helpers import load_bench


def test_bench_prunes_each_rate_to_its_share(tmp_path, capsys):
    bench = load_bench("bench_evs")
    out = tmp_path / "evs.json"
    assert bench.main(["--device", "cpu", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [r["q"] for r in rows] == list(bench.RATES)
    assert all(r["frames"] == 120 for r in rows)  # 60 s at 2 fps
    full = rows[0]["video_tokens"]
    for r in rows:
        # EVS keeps (1 - q) of the tokens, give or take the rounding of one token
        assert abs(r["video_tokens"] - full * (1 - r["q"])) <= 1, r
        assert r["total_s"] >= r["decode_s"] > 0
    assert [r["prompt_chars"] for r in rows] == sorted((r["prompt_chars"] for r in rows), reverse=True)
    assert "video tokens" in capsys.readouterr().out
