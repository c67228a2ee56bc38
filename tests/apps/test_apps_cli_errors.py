"""cli_apps.main on bad input: one-line errors before any model work, exit codes, and nothing computed lost.

Most tests pass a stand-in LLM that fails the test if the model is asked anything, so they run in
milliseconds; run: pytest tests/apps/test_apps_cli_errors.py
"""
from __future__ import annotations

import io
import json
from types import SimpleNamespace

import pytest
from PIL import Image

from helpers import write_gray_mp4
from nanovl.apps.cli_apps import main

INVOICE = {"vendor": "Nova Labs", "invoice_number": "A-1", "date": "2024-08-14", "currency": "EUR",
           "total": 10.0, "items": [{"description": "Tea", "qty": 1, "unit_price": 10.0}]}


class NoModel:
    """Stands in for the LLM where the command must stop before the model runs."""

    def __getattr__(self, name):
        raise AssertionError(f"the model was used (LLM.{name}) before the arguments were checked")


class ScriptedLLM:
    """Answers extraction requests in order with scripted (text, finish_reason) pairs."""

    def __init__(self, *answers: tuple[str, str]) -> None:
        self.answers = list(answers)

    def chat(self, messages, params, **_):
        batch = messages if isinstance(messages[0], list) else [messages]
        return [SimpleNamespace(text=text, finish_reason=reason) for text, reason in self.answers[:len(batch)]]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_gray_mp4(tmp_path_factory.mktemp("cli_errors") / "clip.mp4", 4, 50)


@pytest.fixture
def png(tmp_path):
    path = tmp_path / "page.png"
    Image.new("RGB", (64, 64), "white").save(path)
    return str(path)


def _run(argv, llm=None):
    out, err = io.StringIO(), io.StringIO()
    code = main(argv, llm=llm if llm is not None else NoModel(), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _assert_usage_error(code, err, *needles):
    assert code == 2, err
    assert err.startswith("nanovl: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("argv,needle", [
    (["extract", "{png}", "-o", "/nonexistent/dir/out.json"], "folder /nonexistent/dir does not exist"),
    (["extract", "{png}", "-o", "{tmp}"], "is a folder"),
    (["extract", "{png}", "-o", "{png}/out.json"], "is not a folder"),
    (["video", "captions", "{clip}", "--format", "vtt", "-o", "/nonexistent/x.vtt"], "/nonexistent"),
    (["video", "captions", "{clip}", "--timeline", "/nonexistent/t.png"], "--timeline"),
    (["video", "captions", "{clip}", "--timeline", "{tmp}"], "is a folder"),
    (["evs-map", "{clip}", "-o", "/nonexistent/map.png"], "/nonexistent"),
    (["evs-map", "{clip}", "-o", "{tmp}"], "is a folder"),
])
def test_unwritable_output_is_refused_before_the_model_runs(argv, needle, png, clip, tmp_path):
    argv = [a.format(png=png, clip=clip, tmp=tmp_path) for a in argv]
    code, out, err = _run(argv)
    _assert_usage_error(code, err, needle, f"(see 'nanovl {argv[0]}")
    assert out == ""


@pytest.mark.parametrize("action", ["captions", "summarize", "ask"])
@pytest.mark.parametrize("flags,needle", [
    (["--fps", "0"], "--fps must be a finite number > 0"),
    (["--fps", "-1"], "--fps must be a finite number > 0"),
    (["--fps", "inf"], "--fps must be a finite number > 0"),
    (["--fps", "nan"], "--fps must be a finite number > 0"),
    (["--max-frames", "0"], "--max-frames must be >= 1"),
])
def test_video_sampling_flags_checked_at_parse_time(action, flags, needle, clip):
    argv = ["video", action, clip, *flags] + (["what?"] if action == "ask" else [])
    code, out, err = _run(argv)
    _assert_usage_error(code, err, needle, f"(see 'nanovl video {action} --help')")


@pytest.mark.parametrize("flags", [["--fps", "0"], ["--max-frames", "0"]])
def test_evs_map_sampling_flags_checked_at_parse_time(flags, clip, tmp_path):
    code, out, err = _run(["evs-map", clip, "-o", str(tmp_path / "m.png"), *flags])
    _assert_usage_error(code, err, flags[0])


@pytest.mark.parametrize("dpi", ["inf", "0", "-5", "nan"])
def test_dpi_checked_at_parse_time(dpi, png):
    code, out, err = _run(["extract", png, "--dpi", dpi])
    _assert_usage_error(code, err, "--dpi must be a finite number > 0")


@pytest.mark.parametrize("argv,prog", [
    (["extract"], "nanovl extract"),
    (["extract", "x.png", "--max-tokens", "many"], "nanovl extract"),
    (["extract", "x.png", "--bogus"], "nanovl extract"),
    (["video", "captions", "x.mp4", "--format", "ass"], "nanovl video captions"),
    (["video"], "nanovl video"),
    (["evs-map", "x.mp4"], "nanovl evs-map"),
])
def test_usage_errors_are_one_line(argv, prog, capsys):
    assert main(argv, llm=NoModel()) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "usage:" not in err, err
    assert err.startswith("nanovl: error: ") and err.endswith(f"(see '{prog} --help')\n"), err


def test_multi_page_extract_keeps_the_pages_that_parsed(png, tmp_path):
    second = tmp_path / "wide.png"
    Image.new("RGB", (256, 64), "white").save(second)
    out_path = tmp_path / "out.json"
    llm = ScriptedLLM((json.dumps(INVOICE), "stop"), ('{"vendor":"Nova', "length"))
    code, out, err = _run(["extract", png, str(second), "-o", str(out_path)], llm)
    assert code == 1
    assert err.startswith("nanovl: error: page 2 (") and str(second) in err and err.count("\n") == 1, err
    assert "max_tokens" in err and "page 1" not in err
    assert json.loads(out_path.read_text()) == INVOICE


def test_extract_names_every_failed_page_when_none_parsed(png):
    llm = ScriptedLLM(("{", "length"), ("[", "length"))
    code, out, err = _run(["extract", png, png], llm)
    assert code == 1 and out == ""
    assert "page 1 (" in err and "page 2 (" in err and err.count("\n") == 1, err


def test_schema_mismatch_writes_the_json_and_exits_1(png, tmp_path):
    answer = {**INVOICE, "total": "lots"}
    code, out, err = _run(["extract", png, "--schema", "invoice"], ScriptedLLM((json.dumps(answer), "stop")))
    assert code == 1 and json.loads(out) == answer
    assert err.startswith("nanovl: error: the extracted JSON does not match the schema: total") and err.count("\n") == 1
    out_path = tmp_path / "inv.json"
    code, out, err = _run(["extract", png, "-o", str(out_path)], ScriptedLLM((json.dumps(answer), "stop")))
    assert code == 1 and json.loads(out_path.read_text()) == answer
    assert f"{out_path} does not match the schema" in err


def test_valid_extraction_still_exits_0(png):
    code, out, err = _run(["extract", png], ScriptedLLM((json.dumps(INVOICE), "stop")))
    assert code == 0 and json.loads(out) == INVOICE and err == ""


def test_evs_map_writes_exactly_the_path_given(random_llm, clip, tmp_path):
    target = tmp_path / "map"
    code, out, err = _run(["evs-map", clip, "-o", str(target), "--pruning-rate", "0.5"], random_llm)
    assert code == 0, err
    assert err.strip() == f"wrote {target}"
    assert Image.open(target).format == "PNG" and not (tmp_path / "map.png").exists()
