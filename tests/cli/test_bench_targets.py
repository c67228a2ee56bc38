"""The targets block under `nanovl bench`'s table: each target judged from the results JSON, both ways."""
from __future__ import annotations

import json
from pathlib import Path

from nanovl import cli_bench
from nanovl.bench.targets import target_rows

H200_RUN = Path(__file__).parents[2] / "bench" / "results-h200-2026-12-04-bench.json"


def _run(b1=(160.0, 175.0), mfu=0.6, b64=3500.0, ttft=((1.5, 1.0), (0.45, 0.3))) -> dict:
    """A results dict shaped as `nanovl bench --out` writes it; ttft = ((q0 s, q0 roofline s), (q.75 ...))."""
    return {"decode": [{"batch": 1, "cuda_graphs": True, "tok_per_s": b1[0], "roofline_tok_per_s": b1[1]},
                       {"batch": 1, "cuda_graphs": False, "tok_per_s": 20.0, "roofline_tok_per_s": b1[1]},
                       {"batch": 1, "cuda_graphs": True, "engine": True, "tok_per_s": 1.0, "roofline_tok_per_s": 9.0},
                       {"batch": 64, "cuda_graphs": True, "tok_per_s": b64, "roofline_tok_per_s": 9000.0}],
            "prefill": [{"tokens": 2048, "mfu": 0.1}, {"tokens": 8192, "mfu": mfu}],
            "ttft": [{"evs_q": 0.0, "seconds": ttft[0][0], "roofline_seconds": ttft[0][1]},
                     {"evs_q": 0.75, "seconds": ttft[1][0], "roofline_seconds": ttft[1][1]}]}


def test_every_target_met():
    rows = target_rows(_run())
    assert len(rows) == 4 and all(r.endswith("met") or "met;" in r for r in rows)
    assert not any("NOT" in r for r in rows)
    assert "91.4% (160.0 tok/s)" in rows[0]  # the graph row, not the eager or the engine one
    assert "out of reach" not in rows[3]


def test_each_target_missed():
    rows = target_rows(_run(b1=(150.0, 175.0), mfu=0.45, b64=2999.0, ttft=((1.2, 0.9), (0.5, 0.4))))
    assert [("NOT met" in r) for r in rows] == [True] * 4
    assert "2.40x" in rows[3] and "roofline's own speed-up is 2.25x" in rows[3] and "out of reach" in rows[3]


def test_a_run_without_the_figures_says_so():
    rows = target_rows({"decode": [], "prefill": [{"tokens": 512, "mfu": 0.9}], "ttft": []})
    assert len(rows) == 4 and all("not measured in this run" in r for r in rows)


def test_the_h200_run_of_2026_12_04(capsys):
    # the committed device run: prefill and b64 met, b1 at 87.4% and EVS 2.32x (bound 2.48x) not
    rows = target_rows(json.loads(H200_RUN.read_text()))
    assert ["NOT met" in r for r in rows] == [True, False, False, True]
    assert "87.4%" in rows[0] and "69.2%" in rows[1] and "5076 tok/s" in rows[2] and "2.48x" in rows[3]
    assert cli_bench.main(["--table-only", "--out", str(H200_RUN)]) == 0
    assert capsys.readouterr().out.strip().endswith(rows[-1])


def test_a_run_of_another_shape_is_not_judged():
    # a CPU run of the tiny preset decodes 5000 tok/s at b64: "met" would mislead
    rows = target_rows({**_run(), "preset": "tiny"})
    assert rows == ["targets: set for the nano-12b-v2-vl shape on a GPU; not judged for preset tiny"]
    assert len(target_rows({**_run(), "preset": "nano-12b-v2-vl"})) == 4
