"""`nanovl chat`: the REPL fed from stdin answers turn by turn like LLM.chat over the same history;
media commands, /reset, errors that do not end the chat, reasoning dimmed on a terminal.

Run: pytest tests/cli/test_cli_chat.py
"""
from __future__ import annotations

import io

import pytest

from nanovl import cli
from nanovl.cli_chat import DIM, RESET, chat_loop

TOKENS = ["--max-tokens", "6", "--no-think"]


@pytest.fixture(scope="module")
def llm(ckpt):
    from nanovl.llm import LLM

    return LLM(ckpt)


def answer(llm, history, **kw):
    from nanovl.sampling_params import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=6, enable_thinking=False, **kw)
    return llm.chat(history, params)[0].text


def test_chat_turns_media_and_reset(llm, ckpt, media, tmp_path, monkeypatch, capsys):
    script = "\n".join([
        "what is it?",                            # 1: with the --image from the command line
        f"/video {tmp_path / 'missing.mp4'}",     # error line, chat goes on
        f"/video {media['video']}",
        "and this?",                              # 2: video attached, history kept
        "/reset",
        "",
        "hello",                                  # 3: fresh conversation
        "/exit",
        "never read",
    ]) + "\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(script))
    code = cli.main(["chat", ckpt, "--image", media["image"], *TOKENS])
    out, err = capsys.readouterr()
    assert code == 0

    image = {"type": "image_url", "image_url": {"url": media["image"]}}
    video = {"type": "video_url", "video_url": {"url": media["video"]}}
    turn1 = [{"role": "user", "content": [image, {"type": "text", "text": "what is it?"}]}]
    a1 = answer(llm, turn1)
    turn2 = turn1 + [{"role": "assistant", "content": a1},
                     {"role": "user", "content": [video, {"type": "text", "text": "and this?"}]}]
    a2 = answer(llm, turn2)
    a3 = answer(llm, [{"role": "user", "content": "hello"}])
    assert out == f"{a1}\n{a2}\n{a3}\n"
    errors = [line for line in err.splitlines() if line.startswith("nanovl: error:")]
    assert len(errors) == 1 and "missing.mp4" in errors[0]


def test_chat_bad_turn_keeps_going(ckpt, media, monkeypatch, capsys):
    # a broken image is refused as it is attached, named by its path; both turns are then answered
    monkeypatch.setattr("sys.stdin", io.StringIO(f"/image {media['broken']}\nlook\nhi\n"))
    assert cli.main(["chat", ckpt, *TOKENS]) == 0
    out, err = capsys.readouterr()
    assert err.count("nanovl: error:") == 1 and f"{media['broken']}: not a supported image" in err
    assert out.count("\n") == 2


def test_chat_missing_start_image_is_one_line_error(ckpt, tmp_path, capsys):
    assert cli.main(["chat", ckpt, "--image", str(tmp_path / "none.png")]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("nanovl: error: image file not found") and err.count("\n") == 1


class _TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_while_a_video_is_preprocessed(ckpt, media, monkeypatch, capsys):
    err = _TTY()
    monkeypatch.setattr("sys.stdin", io.StringIO(f"/video {media['video']}\nwhat happens?\n"))
    monkeypatch.setattr("sys.stderr", err)
    assert cli.main(["chat", ckpt, *TOKENS]) == 0
    assert "loading model" in err.getvalue() and "preprocessing video" in err.getvalue()
    assert capsys.readouterr().out.count("\n") == 1


def test_reasoning_dimmed_on_a_terminal(llm):
    from nanovl.sampling_params import SamplingParams

    params = SamplingParams(temperature=0, max_tokens=6)
    tty = _TTY()
    chat_loop(llm, params, [], [], media_part=lambda kind, path: {}, stdin=io.StringIO("think first\n"),
              stdout=tty)
    want = llm.chat([{"role": "user", "content": "think first"}], params)[0]
    # thinking on: the random model's tokens are all reasoning, shown between the dim codes
    assert want.reasoning_content
    assert f"{DIM}{want.reasoning_content}{RESET}" in tty.getvalue()
    plain = io.StringIO()
    chat_loop(llm, params, [], [], media_part=lambda kind, path: {}, stdin=io.StringIO("think first\n"),
              stdout=plain)
    assert DIM not in plain.getvalue() and want.reasoning_content in plain.getvalue()
