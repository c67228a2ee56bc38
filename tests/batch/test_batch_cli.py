"""`nanovl batch`: one-line errors and exit codes before any model work; a run through the CLI."""
from __future__ import annotations

import os

import pytest
from batchkit import ask, line, read_records, write_jsonl

from nanovl.cli import main


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if anything loads a model (the checks must come first)."""
    import nanovl.llm

    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the arguments were checked")

    monkeypatch.setattr(nanovl.llm.LLM, "__init__", refuse)


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("nanovl: error: "), err
    return err[0]


def test_missing_input(tmp_path, capsys, no_model):
    assert main(["batch", str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "out.jsonl")]) == 1
    assert "input file not found" in one_error_line(capsys)


def test_unwritable_output(tmp_path, capsys, no_model):
    src = write_jsonl(tmp_path / "in.jsonl", [line("a", ask("hi"))])
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    # root passes permission checks, but nobody creates files in /proc
    out = "/proc/nanovl-batch-out.jsonl" if os.geteuid() == 0 else str(locked / "out.jsonl")
    assert main(["batch", str(src), "-o", out]) == 1
    assert "cannot write output" in one_error_line(capsys)


@pytest.mark.parametrize("out, words", [("missing-folder/out.jsonl", "does not exist"), (".", "is a folder")])
def test_output_path_that_cannot_be_a_file(tmp_path, capsys, no_model, out, words):
    src = write_jsonl(tmp_path / "in.jsonl", [line("a", ask("hi"))])
    assert main(["batch", str(src), "-o", str(tmp_path / out)]) == 1
    assert words in one_error_line(capsys)


@pytest.mark.parametrize("content, words", [(b"\x89PNG\r\n\x1a\n\x00\x00", "not JSONL"), (b"[1, 2]\n", "not JSONL"),
                                            (b"\n\n", "is empty")])
def test_input_that_is_not_jsonl(tmp_path, capsys, no_model, content, words):
    src = tmp_path / "in.jsonl"
    src.write_bytes(content)
    assert main(["batch", str(src), "-o", str(tmp_path / "out.jsonl")]) == 1
    assert words in one_error_line(capsys)


def test_existing_output_needs_resume_or_overwrite(tmp_path, capsys, no_model):
    src = write_jsonl(tmp_path / "in.jsonl", [line("a", ask("hi"))])
    out = write_jsonl(tmp_path / "out.jsonl", ["{}"])
    assert main(["batch", str(src), "-o", str(out)]) == 1
    assert "--resume" in one_error_line(capsys) and out.read_text() == "{}\n"


def test_usage_errors_exit_2(tmp_path, capsys, no_model):
    src = write_jsonl(tmp_path / "in.jsonl", [line("a", ask("hi"))])
    assert main(["batch", str(src), "-o", str(tmp_path / "o.jsonl"), "--replicas", "2"]) == 2
    assert "need --ray" in one_error_line(capsys)
    with pytest.raises(SystemExit) as exc:
        main(["batch", str(src)])
    assert exc.value.code == 2 and "-o/--output" in one_error_line(capsys)


def test_a_run_through_the_cli(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [line("a", ask("Hello /no_think", max_tokens=4)), "oops"])
    out = tmp_path / "out.jsonl"
    assert main(["batch", str(src), "-o", str(out), "--max-num-seqs", "2"]) == 0
    assert [r["response"]["status_code"] for r in read_records(out)] == [400, 200]
    assert "1 done, 1 failed, 0 skipped" in capsys.readouterr().err
