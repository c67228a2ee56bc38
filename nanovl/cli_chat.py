"""The terminal chat loop behind `nanovl chat`: streamed answers, reasoning dimmed on a TTY.

Commands: /image PATH and /video PATH attach media to the next message, /reset clears the
conversation, /exit (or EOF) leaves. A bad file or request prints one error line and the chat goes on.
"""
from __future__ import annotations

import contextlib
import itertools
import sys
from typing import Any, Callable, ContextManager, TextIO

DIM, RESET = "\x1b[2m", "\x1b[0m"
HELP = "commands: /image PATH, /video PATH, /reset, /exit"


def chat_loop(llm, params, history: list[dict[str, Any]], pending: list[dict[str, Any]], *,
              media_part: Callable[[str, str], dict[str, Any]], stdin: TextIO | None = None,
              stdout: TextIO | None = None, busy: Callable[[str], ContextManager] | None = None) -> int:
    """Read lines, answer each with `llm.stream_chat`; returns the exit status (0).

    busy(desc): a context manager shown while a turn with a video is preprocessed (a progress line).
    """
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    busy = busy or (lambda desc: contextlib.nullcontext())
    base = list(history)
    tty = stdout.isatty()
    print(HELP, file=sys.stderr)
    while True:
        if tty:
            stdout.write("> ")
            stdout.flush()
        line = stdin.readline()
        if not line:
            break
        line = line.strip()
        if line in ("/exit", "/quit"):
            break
        if line == "/reset":
            history, pending = list(base), []
            continue
        if line.startswith(("/image ", "/video ")):
            kind, _, path = line[1:].partition(" ")
            try:
                pending.append(media_part(kind, path.strip()))
            except Exception as err:  # noqa: BLE001 - one line, then the chat goes on
                print(f"nanovl: error: {err}", file=sys.stderr)
            continue
        if not line:
            continue
        content = [*pending, {"type": "text", "text": line}] if pending else line
        history.append({"role": "user", "content": content})
        try:
            # the whole history goes to the model each turn, so an earlier video is decoded again
            wait = busy("preprocessing video") if _has_video(history) else contextlib.nullcontext()
            answer = _stream_answer(llm, history, params, stdout, tty, wait)
        except (ValueError, RuntimeError) as err:
            # drop the turn and its attachments: a broken file would fail every later turn too
            history.pop()
            pending = []
            print(f"nanovl: error: {' '.join(str(err).split())}", file=sys.stderr)
            continue
        history.append({"role": "assistant", "content": answer})
        pending = []
    return 0


def _has_video(history: list[dict[str, Any]]) -> bool:
    return any(isinstance(m.get("content"), list) and any(p.get("type") == "video_url" for p in m["content"])
               for m in history)


def _stream_answer(llm, history, params, stdout: TextIO, tty: bool, first_wait: ContextManager) -> str:
    """Print the reasoning (dimmed on a TTY) and the answer as they stream; return the answer."""
    out, in_reasoning = None, False
    stream = iter(llm.stream_chat(history, params))
    # media are decoded before the first output: that wait is what `first_wait` covers
    with first_wait:
        first = list(itertools.islice(stream, 1))
    for out in itertools.chain(first, stream):
        if out.delta_reasoning:
            if not in_reasoning and tty:
                stdout.write(DIM)
            in_reasoning = True
            stdout.write(out.delta_reasoning)
        if out.delta:
            if in_reasoning:
                stdout.write(RESET + "\n" if tty else "\n")
                in_reasoning = False
            stdout.write(out.delta)
        stdout.flush()
    if in_reasoning and tty:
        stdout.write(RESET)
    stdout.write("\n")
    stdout.flush()
    return out.text if out is not None else ""
