"""`nanovl bench` on the CPU (the tiny preset): every figure beside its roofline in the JSON and the
table, a rerun resumes instead of measuring again, and --table-only reprints the JSON's table."""
from __future__ import annotations

import json

import pytest
import torch

from nanovl import cli_bench


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    table = out.with_suffix(".txt")
    assert cli_bench.main(["--device", "cpu", "--sections", "prefill,decode,image", "--skip-hf",
                           "--time-budget", "120", "--out", str(out), "--table-out", str(table)]) == 0
    return out, table


def test_every_figure_sits_under_its_roofline(bench_run):
    out, _ = bench_run
    d = json.loads(out.read_text())
    assert d["preset"] == "tiny" and d["device"] == "cpu" and not d["kernel_failures"]
    assert d["ops"]["pdl"] == "auto" and not d["ops"]["pdl_capable"] and d["ops"]["skinny_gemm"] is True  # what the figures ran with
    assert d["ops"]["cpu_twins"] is True
    assert [r["tokens"] for r in d["prefill"]] == [32, 128, 512]
    assert [(r["batch"], bool(r.get("engine"))) for r in d["decode"]] == [(1, False), (16, False), (64, False),
                                                                          (1, True)]
    [engine] = [r for r in d["decode"] if r.get("engine")]
    # the whole engine (scheduler, sampler, detokenizer) on the same model; on a CPU without graphs
    assert engine["steps"] == 16 and engine["graph_steps"] == 0 and not engine["cuda_graphs"]
    for r in d["prefill"]:
        assert 0 < r["tok_per_s"] < r["roofline_tok_per_s"], r
    for r in d["decode"]:
        assert 0 < r["tok_per_s"] < r["roofline_tok_per_s"], r
    [img] = d["ttft"]
    assert img["roofline_seconds"] < img["seconds"] and img["prompt_tokens"] > 0


def test_the_table_prints_each_row(bench_run, capsys):
    out, table = bench_run
    text = table.read_text()
    for row in ("prefill 32 tok (tok/s)", "decode b64 eager (tok/s)", "decode b1 engine eager (tok/s)",
                "TTFT image 13 tiles (s)"):
        assert row in text
    assert "kernel failures: none" in text
    assert cli_bench.main(["--table-only", "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == text.strip()


def test_a_rerun_resumes_instead_of_measuring_again(bench_run, capsys):
    out, _ = bench_run
    before = json.loads(out.read_text())
    assert cli_bench.main(["--device", "cpu", "--sections", "prefill,decode,image", "--skip-hf",
                           "--time-budget", "120", "--out", str(out)]) == 0
    after = json.loads(out.read_text())
    assert after["prefill"] == before["prefill"] and after["decode"] == before["decode"]


def test_the_engine_bench_decodes_a_batch_of_requests_together():
    from nanovl.bench import lm as our_bench

    model = our_bench.build_model("tiny", torch.device("cpu"), torch.float32)
    r = our_bench.bench_engine_decode(model, 8, 5, graphs=False, lookahead=False, batch=3)
    # three requests of 6 tokens each: the first token of each comes from its prompt's step, so the
    # timed decode covers the other 5 of each
    assert (r["batch"], r["steps"]) == (3, 5) and r["tok_per_s"] > 0 and r["step_seconds"] > 0
    assert r["lookahead_steps"] == 0 and r["graph_steps"] == 0


def test_transformers_figures_without_a_nanovl_row_still_print(capsys):
    # the committed `--sections hf` run of the H200: every transformers figure gets its own row
    from pathlib import Path

    run = Path(__file__).parents[2] / "bench" / "results-h200-2026-12-04-s18-3-transformers-all-lm-figures.json"
    assert cli_bench.main(["--table-only", "--out", str(run)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line[:34].strip(): line.split()[-2] for line in lines if line.startswith(("prefill", "decode"))}
    assert rows == {"prefill 2048 tok (tok/s)": "1029.5", "prefill 8192 tok (tok/s)": "974.9",
                    "prefill 32768 tok (tok/s)": "OOM", "decode b1 (tok/s)": "10.1",
                    "decode b16 (tok/s)": "246.7", "decode b64 (tok/s)": "570.1"}


@pytest.mark.parametrize("argv,match", [
    (["--device", "bogus"], "--device: device 'bogus' is not a device name"),
    (["--sections", "prefill,bogus"], "--sections: unknown ['bogus']"),
    (["--preset", "huge"], "--preset 'huge' is not one of"),
    (["--table-only"], "--table-only prints the table of an existing --out"),
    (["--table-only", "--out", "MISSING"], "--table-only prints the table of an existing --out"),
    (["--out", "NOT_JSON"], "not a results file of nanovl bench"),
], ids=["device", "sections", "preset", "table-only-no-out", "table-only-missing", "out-not-json"])
def test_bad_arguments_are_one_line_errors_before_any_measurement(argv, match, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cli_bench.rl, "measure_device", lambda *a: pytest.fail("measured despite bad arguments"))
    (tmp_path / "not.json").write_text("a table, not JSON")
    argv = [{"MISSING": str(tmp_path / "none.json"), "NOT_JSON": str(tmp_path / "not.json")}.get(a, a) for a in argv]
    assert cli_bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("nanovl bench: error: ") and match in err and err.count("\n") == 1, err
