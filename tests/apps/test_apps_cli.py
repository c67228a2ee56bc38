"""`nanovl video|evs-map|extract` through cli_apps.main: outputs, files, and one-line errors."""
from __future__ import annotations

import http.server
import io
import json
import random
import threading
from dataclasses import replace
from functools import partial

import pytest
from PIL import Image

from nanovl.apps.cli_apps import main
from nanovl.apps.schemas import load_schema, validation_errors
from nanovl.train.data.documents import make_document_sample
from nanovl.train.data.videos import random_script, write_video


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    write_video(replace(random_script(random.Random(4)), duration=5.0), folder / "clip.mp4")
    return folder / "clip.mp4"


@pytest.fixture(scope="module")
def served(clip):
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/{clip.name}"
    httpd.shutdown()
    httpd.server_close()


def _run(argv, llm=None, stdin: str | None = None, monkeypatch=None):
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(argv, llm=llm, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("argv", [["video", "summarize", "--help"], ["video", "captions", "--help"],
                                  ["video", "ask", "--help"], ["evs-map", "--help"], ["extract", "--help"]])
def test_help(argv, capsys):
    assert main(argv) == 0
    assert "usage: nanovl" in capsys.readouterr().out


def test_summarize_with_followups_prints_timings(random_llm, clip, monkeypatch):
    code, out, err = _run(["video", "summarize", str(clip), "--bullets", "2", "--max-tokens", "16", "--style", "free",
                           "--ask", "What moves?", "--interactive", "--no-progress"], random_llm,
                          stdin="And then?\nexit\n", monkeypatch=monkeypatch)
    assert code == 0, err
    assert out.startswith("- ") and out.count("Q: ") == 2 and "Q: And then?" in out
    assert "video prefix:" in err and err.count("follow-up:") == 2 and "saved" in err


def test_summarize_from_url(random_llm, served):
    code, out, err = _run(["video", "summarize", served, "--allow-private-urls", "--max-tokens", "8",
                           "--no-audio", "--style", "free"], random_llm)
    assert code == 0, err
    assert out.startswith("- ")


def test_private_url_refused_in_one_line(random_llm, served):
    code, out, err = _run(["video", "summarize", served, "--max-tokens", "8"], random_llm)
    assert code == 1 and out == ""
    assert err.startswith("nanovl: error: refusing to fetch") and err.count("\n") == 1


def test_captions_srt_and_timeline(random_llm, clip, tmp_path):
    srt, png = tmp_path / "c.srt", tmp_path / "t.png"
    code, out, err = _run(["video", "captions", str(clip), "--format", "srt", "-o", str(srt), "--timeline", str(png),
                           "--max-context", "400", "--max-tokens", "200", "--no-audio", "--no-progress"], random_llm)
    assert code == 0, err
    assert "segments" in err  # 5 s at 2 fps does not fit 400 tokens with a 200-token answer: split
    text = srt.read_text()
    assert text.startswith("1\n00:00:0") and " --> " in text
    assert Image.open(png).format == "PNG"


def test_evs_map_command(random_llm, clip, tmp_path):
    png = tmp_path / "map.png"
    code, out, err = _run(["evs-map", str(clip), "-o", str(png), "--pruning-rate", "0.5"], random_llm)
    assert code == 0, err
    assert "video tokens without EVS: 160" in out and f"with EVS:    {random_llm.video_token_count(10, 0.5)}" in out
    assert Image.open(png).format == "PNG"


def test_extract_command(random_llm, tmp_path):
    png = tmp_path / "inv.png"
    make_document_sample(0, augment=False).images[0].save(png)
    code, out, err = _run(["extract", str(png), "--schema", "receipt", "--max-tokens", "600"], random_llm)
    assert code == 0, err
    assert validation_errors(json.loads(out), load_schema("receipt")) == []
    code, out, err = _run(["extract", str(png), "--markdown", "--max-tokens", "4"], random_llm)
    assert code == 0 and out.endswith("\n")


@pytest.mark.parametrize("argv,needle", [
    (["video", "summarize", "missing.mp4", "--no-audio"], "missing.mp4"),
    (["extract", "missing.png"], "missing.png"),
    (["extract", "{png}", "--schema", "passport"], "neither a built-in"),
    (["evs-map", "{clip}", "-o", "x.png", "--pruning-rate", "1.5"], "--pruning-rate"),
    (["video", "captions", "{clip}", "--max-context", "50", "--no-audio"], "raise --max-context"),
])
def test_bad_input_is_one_line_error(random_llm, clip, tmp_path, argv, needle):
    png = tmp_path / "p.png"
    Image.new("RGB", (64, 64), "white").save(png)
    argv = [a.format(png=png, clip=clip) for a in argv]
    code, out, err = _run(argv, random_llm)
    assert code == 1 and out == ""
    assert err.startswith("nanovl: error: ") and needle in err and err.count("\n") == 1


def test_bad_arguments_exit_2(capsys):
    assert main(["video", "summarize"]) == 2
    assert "required" in capsys.readouterr().err
