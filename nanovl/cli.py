"""`nanovl` command line: serve | chat | run | info, plus bench | train | eval | video | extract | batch | quantize.

    nanovl serve [MODEL] --port 8000 --allowed-media-root ~/pictures
    nanovl run [MODEL] "What is in this picture?" --image cat.png --json-schema answer.json
    nanovl chat [MODEL] --image cat.png
    nanovl info [MODEL] --image cat.png

MODEL is a checkpoint folder or hub id; left out, the bundled tiny model. Engine flags
(--max-num-seqs, --max-model-len, --device, ...) are generated from EngineConfig's fields.
Bad input prints one "nanovl: error: ..." line on stderr and exits 1.
"""
from __future__ import annotations

import argparse
import functools
import importlib
import json
import sys
import threading
from pathlib import Path
from typing import Any, Sequence

from nanovl.apps.cli_args import OneLineParser, error_line
from nanovl.engine_flags import add_engine_flags, engine_kwargs

# subcommand -> (module, argv prefix): whole argv handed over, parsed by the module itself
DELEGATED = {
    "bench": ("nanovl.cli_bench", (), "benchmarks (prefill, decode, TTFT)"),
    "train": ("nanovl.train.recipe", (), "train the tiny model"),
    "eval": ("nanovl.train.eval_cli", (), "evaluate a checkpoint"),
    "video": ("nanovl.apps.cli_apps", ("video",), "summarize, ask about or caption a video"),
    "extract": ("nanovl.apps.cli_apps", ("extract",), "schema-constrained extraction from documents"),
    "evs-map": ("nanovl.apps.cli_apps", ("evs-map",), "draw which video tokens EVS keeps"),
    "batch": ("nanovl.batch.cli", (), "run an OpenAI Batch JSONL file (in process or on Ray)"),
    "quantize": ("nanovl.quant.cli", (), "FP8 copy of a checkpoint, calibrated (ModelOpt's layout)"),
}
DIM, RESET = "\x1b[2m", "\x1b[0m"


class CLIError(Exception):
    """Bad command-line input: reported as one line, exit status 1."""


# ------------------------------------------------------------------- parser
def _media_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image", action="append", default=[], help="image or PDF file (repeatable; a PDF gives its pages)")
    p.add_argument("--video", action="append", default=[], help="video file (repeatable)")


def _speech_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--speech", action="store_true",
                   help="give each video the transcript of its audio, timed with its frames (faster-whisper)")


def _sampling_flags(p: argparse.ArgumentParser, max_tokens: int) -> None:
    p.add_argument("--max-tokens", type=int, default=max_tokens)
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    p.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling: keep the most likely tokens "
                   "up to this mass (default 1: off)")
    p.add_argument("--top-k", type=int, default=0, help="keep the k most likely tokens (default 0: off)")
    p.add_argument("--min-p", type=float, default=0.0, help="drop tokens below this share of the most "
                   "likely one's probability (default 0: off)")
    p.add_argument("--seed", type=int)
    p.add_argument("--no-think", action="store_true", help="answer without reasoning first")
    p.add_argument("--thinking-budget", type=int, help="cap on reasoning tokens")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nanovl", description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("serve", help="OpenAI-compatible HTTP server")
    s.add_argument("model", nargs="?", help="checkpoint folder or hub id (default: bundled tiny model)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY' on /v1/*")
    s.add_argument("--served-model-name", nargs="+", default=[], help="names the model answers to")
    s.add_argument("--allowed-media-root", type=Path, help="serve local media files below this folder")
    s.add_argument("--allow-remote-media", action="store_true", help="fetch http(s) media (public hosts only)")
    s.add_argument("--no-web", action="store_true", help="serve the API only, without the chat page at /")
    s.add_argument("--max-body-bytes", type=int, default=100 * 2**20)
    s.add_argument("--max-media-count", type=int, default=16, help="images + videos per request")
    s.add_argument("--max-media-bytes", type=int, default=64 * 2**20, help="bytes per image or video")
    s.add_argument("--queue-full-status", type=int, choices=(429, 503), default=429)
    s.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    add_engine_flags(s)

    c = sub.add_parser("chat", help="interactive chat in the terminal (/image, /video, /reset, /exit)")
    c.add_argument("model", nargs="?", help="checkpoint folder or hub id")
    c.add_argument("--system", help="system prompt")
    _media_flags(c)
    _speech_flag(c)
    _sampling_flags(c, 1024)
    add_engine_flags(c)

    r = sub.add_parser("run", help="answer one prompt (with media) and print the answer")
    r.add_argument("words", nargs="+", metavar="[MODEL] PROMPT", help="optional model, then the prompt")
    _media_flags(r)
    _speech_flag(r)
    _sampling_flags(r, 512)
    r.add_argument("--json-schema", type=Path, help="JSON schema file; the answer is JSON that follows it")
    r.add_argument("--show-reasoning", action="store_true", help="print the reasoning to stderr")
    add_engine_flags(r)

    i = sub.add_parser("info", help="model summary and the token cost of an image or video")
    i.add_argument("model", nargs="?", help="checkpoint folder or hub id")
    _media_flags(i)

    for name, (_, _, text) in DELEGATED.items():
        sub.add_parser(name, help=text, add_help=False)
    return parser


# ----------------------------------------------------------------- commands
def cmd_serve(args: argparse.Namespace) -> int:
    from nanovl.engine.async_engine import AsyncEngine
    from nanovl.server.app import build_app, serve
    from nanovl.server.media import MediaPolicy
    from nanovl.server.state import ServerSettings

    if args.allowed_media_root is not None and not args.allowed_media_root.is_dir():
        raise CLIError(f"--allowed-media-root {args.allowed_media_root} is not a folder")
    _check_listen(args.host, args.port)
    media = MediaPolicy(allowed_root=args.allowed_media_root, allow_remote=args.allow_remote_media,
                        max_media_count=args.max_media_count, max_media_bytes=args.max_media_bytes)
    settings = ServerSettings(host=args.host, port=args.port, served_model_names=tuple(args.served_model_name),
                              api_key=args.api_key, max_body_bytes=args.max_body_bytes,
                              queue_full_status=args.queue_full_status, media=media, web_page=not args.no_web)
    llm = _load_llm(args.model, engine_kwargs(args))
    serve(build_app(AsyncEngine(llm.engine), settings), settings, log_level=args.log_level)
    return 0


def _check_listen(host: str, port: int) -> None:
    """Refuse a port out of range, or an address already taken, before the model loads (after it,
    uvicorn's bind failure is a stack trace)."""
    import socket

    if not 0 <= port <= 65535:
        raise CLIError(f"--port must be in 0..65535, got {port}")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as err:
        raise CLIError(f"--host {host!r}: {err.strerror}") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind(address)
        except OSError as err:
            raise CLIError(f"cannot listen on {host}:{port}: {err.strerror}") from None


def cmd_run(args: argparse.Namespace) -> int:
    if len(args.words) > 2:
        raise CLIError("run takes [MODEL] PROMPT; quote a prompt with spaces")
    model, prompt = (None, args.words[0]) if len(args.words) == 1 else args.words
    fmt = _response_format(args.json_schema)
    messages = [{"role": "user", "content": _content(args, prompt)}]
    llm = _load_llm(model, _one_conversation(engine_kwargs(args)))
    with _Spinner("preprocessing video" if args.video else "generating"):
        out = llm.chat(messages, _params(args, response_format=fmt))[0]
    if args.show_reasoning and out.reasoning_content:
        print(_dim(out.reasoning_content, sys.stderr), file=sys.stderr)
    print(out.text)
    if fmt is not None and out.finish_reason == "length":
        raise CLIError(f"the answer reached --max-tokens {args.max_tokens} before the JSON was complete")
    if not out.text.strip() and out.reasoning_content is not None:
        # an empty line and exit 0 would read as an answer; say where the tokens went
        if out.finish_reason == "length":
            raise CLIError(f"--max-tokens {args.max_tokens} ran out while the model was still reasoning; "
                           "raise it, set a --thinking-budget, or add /no_think")
        raise CLIError("the model ended without an answer after its reasoning (--show-reasoning shows it); "
                       "try again, or add /no_think")
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    from nanovl.cli_chat import chat_loop

    media_part = functools.partial(_media_part, speech=args.speech)
    pending = [media_part("image", p) for p in args.image] + [media_part("video", p) for p in args.video]
    llm = _load_llm(args.model, _one_conversation(engine_kwargs(args)))
    history = [{"role": "system", "content": args.system}] if args.system else []
    return chat_loop(llm, _params(args), history, pending, media_part=media_part, busy=_Spinner)


def cmd_info(args: argparse.Namespace) -> int:
    from nanovl.model_info import describe_model

    for line in describe_model(args.model, images=[_checked(p, "image") for p in args.image],
                              videos=[_checked(p, "video") for p in args.video]):
        print(line)
    return 0


# ------------------------------------------------------------------ helpers
def _one_conversation(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Engine settings for a command that runs one request at a time (run, chat): one state slot,
    unless --max-num-seqs says otherwise. More slots would only hold recurrent state no request uses
    (about 150 MB a slot at the 12B shape) and, on a GPU, capture and compile decode graphs for
    batches that never come (2.2 s for batches 2, 4 and 8 on the H200)."""
    return {"max_num_seqs": 1, **kwargs}


def _load_llm(model: str | None, kwargs: dict[str, Any]):
    from nanovl.llm import LLM

    if not sys.stderr.isatty():
        return LLM(model, **kwargs)
    from tqdm import tqdm

    from nanovl.model.loader import loading_progress

    # a byte-accurate bar: the loader reports each tensor as it lands
    with tqdm(desc="loading model", unit="B", unit_scale=True, file=sys.stderr, leave=False) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        with loading_progress(advance):
            return LLM(model, **kwargs)


def _params(args: argparse.Namespace, **extra: Any):
    from nanovl.sampling_params import SamplingParams

    return SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k, min_p=args.min_p,
                          max_tokens=args.max_tokens, seed=args.seed,
                          enable_thinking=False if args.no_think else None,
                          thinking_budget=args.thinking_budget, **extra)


def _checked(path: str, kind: str) -> str:
    p = Path(path).expanduser()
    if p.is_dir():
        raise CLIError(f"{kind} {path} is a folder, not a file")
    if not p.is_file():
        raise CLIError(f"{kind} file not found: {path}")
    return str(p)


def _media_part(kind: str, path: str, *, speech: bool = False) -> dict[str, Any]:
    """A content part for a media file, read once here so that a file that is no image (or has no
    video stream) fails now, named by its path, not later as "image #1" mid-conversation."""
    path = _checked(path, kind)
    if kind == "image":
        from nanovl.inputs.image import load_image
        from nanovl.inputs.pdf import load_pdf_pages
        from nanovl.inputs.pdf_parts import is_pdf_source

        # a PDF reads as its pages (nanovl/inputs/pdf_parts.py)
        if is_pdf_source(path):
            load_pdf_pages(path, max_pages=1, name=path)
        else:
            load_image(path, name=path)
    else:
        from nanovl.inputs.video import probe_video

        probe_video(path, name=path)
    media = {"url": path, "transcript": "auto"} if speech and kind == "video" else {"url": path}
    return {"type": f"{kind}_url", f"{kind}_url": media}


def _content(args: argparse.Namespace, prompt: str) -> list[dict[str, Any]]:
    parts = [_media_part("image", p) for p in args.image]
    parts += [_media_part("video", p, speech=args.speech) for p in args.video]
    return parts + [{"type": "text", "text": prompt}]


def _response_format(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CLIError(f"schema file not found: {path}")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CLIError(f"schema file {path} is not valid JSON: {err}")
    if not isinstance(schema, dict):
        raise CLIError(f"schema file {path} must hold a JSON object")
    return {"type": "json_schema", "json_schema": {"name": path.stem, "schema": schema}}


def _dim(text: str, stream) -> str:
    return f"{DIM}{text}{RESET}" if stream.isatty() else text


class _Spinner:
    """A line with the elapsed time on stderr while a step without progress hooks runs (TTY only)."""

    def __init__(self, desc: str) -> None:
        self.desc = desc
        self.bar = None
        self.done = threading.Event()

    def __enter__(self) -> "_Spinner":
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=None, desc=self.desc, file=sys.stderr, bar_format="{desc}: {elapsed}", leave=False)
            threading.Thread(target=self._tick, daemon=True).start()
        return self

    def _tick(self) -> None:
        # no total is known, so refresh the elapsed time by hand
        while not self.done.wait(0.2):
            self.bar.refresh()

    def __exit__(self, *exc) -> None:
        self.done.set()
        if self.bar is not None:
            self.bar.close()


def _delegate(name: str, rest: list[str]) -> int:
    module_name, prefix, _ = DELEGATED[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as err:
        print(f"nanovl: error: '{name}' is not available in this install (cannot import {err.name})",
              file=sys.stderr)
        return 2
    result = module.main([*prefix, *rest])
    return result if isinstance(result, int) else 0


COMMANDS = {"serve": cmd_serve, "run": cmd_run, "chat": cmd_chat, "info": cmd_info}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `nanovl` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    from nanovl.errors import NanovlError

    try:
        return COMMANDS[args.command](args)
    except (CLIError, NanovlError, ValueError, OSError) as err:
        print(error_line(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nanovl: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
