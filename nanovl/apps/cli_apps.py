"""Command-line entry of the workflows: `nanovl video ...`, `nanovl evs-map`, `nanovl extract`.

    nanovl video summarize talk.mp4 --bullets 5 --ask "Who speaks first?"
    nanovl video captions talk.mp4 --format vtt --timeline timeline.png
    nanovl evs-map talk.mp4 -o map.png --pruning-rate 0.7
    nanovl extract invoice.pdf --schema invoice

`main(argv)` returns the exit status; bad input prints one "nanovl: error: ..." line on stderr:
exit 2 for bad arguments and output paths (checked before any model work), 1 for what fails later.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from nanovl.apps.cli_args import (USAGE_EXIT, OneLineParser, error_line, output_problem, positive_problem,
                                  usage_line)

COMMANDS = ("video", "evs-map", "extract")


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="checkpoint folder or hub id (default: the bundled tiny model)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    g.add_argument("--dtype", default="auto", help="auto, float32, bfloat16, float16")
    g.add_argument("--max-tokens", type=int, default=512, help="answer length limit (tokens)")
    g.add_argument("--temperature", type=float, default=0.0)
    g.add_argument("--seed", type=int)
    g.add_argument("--think", action="store_true", help="let the model reason before answering")


def _url_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("URLs")
    g.add_argument("--allow-private-urls", action="store_true", help="allow loopback/private addresses")
    g.add_argument("--max-download-mb", type=float, default=2048.0, help="abort downloads past this size")
    g.add_argument("--download-timeout", type=float, default=60.0, help="seconds per download")
    g.add_argument("--yt-dlp", action="store_true", help="fetch video-site pages with yt-dlp (optional extra)")


def _video_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", help="video file or http(s) URL")
    g = p.add_argument_group("video")
    g.add_argument("--fps", type=float, default=2.0, help="frames sampled per second")
    g.add_argument("--max-frames", type=int, default=128, help="frames sampled at most")
    g.add_argument("--pruning-rate", type=float, help="EVS rate in [0, 1) (default: the model's)")
    g.add_argument("--no-audio", action="store_true", help="ignore the audio track")
    g.add_argument("--asr-model", help="Whisper model folder or name (default: bundled tiny.en)")
    g.add_argument("--max-context", type=int, help="tokens per prompt; longer videos are split into segments")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    _model_args(p)
    _url_args(p)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="nanovl", description="nanovl workflows")
    sub = parser.add_subparsers(dest="command", required=True)
    video = sub.add_parser("video", help="summarize, ask about or caption a video").add_subparsers(
        dest="action", required=True)
    s = video.add_parser("summarize", help="bullet-point summary from frames and speech")
    _video_args(s)
    s.add_argument("--bullets", type=int, default=5, help="number of bullet points")
    s.add_argument("--style", choices=("grounded", "free"), default="grounded",
                   help="grounded: timed events + narration (what the tiny model was trained on); "
                        "free: one summary prompt, for large instruction-tuned models")
    s.add_argument("--ask", action="append", default=[], help="follow-up question (repeatable)")
    s.add_argument("--interactive", action="store_true", help="then read follow-up questions from stdin")
    a = video.add_parser("ask", help="answer questions about a video")
    _video_args(a)
    a.add_argument("question", nargs="+")
    c = video.add_parser("captions", help="dense captions with start/end times")
    _video_args(c)
    c.add_argument("--format", choices=("json", "vtt", "srt"), default="json")
    c.add_argument("-o", "--output", help="write here instead of stdout")
    c.add_argument("--timeline", help="also save a timeline PNG here")
    e = sub.add_parser("evs-map", help="picture of the patches EVS keeps in each frame")
    e.add_argument("source", help="video file or http(s) URL")
    e.add_argument("-o", "--output", required=True, help="PNG to write")
    e.add_argument("--pruning-rate", type=float, default=0.7)
    e.add_argument("--fps", type=float, default=2.0)
    e.add_argument("--max-frames", type=int, default=32)
    _model_args(e)
    _url_args(e)
    x = sub.add_parser("extract", help="document images / PDF pages -> JSON (or Markdown)")
    x.add_argument("sources", nargs="+", help="images / PDFs / URLs: the pages of one document, in order")
    x.add_argument("--schema", default="invoice", help="invoice, receipt, or a JSON schema file")
    x.add_argument("--markdown", action="store_true", help="full text as Markdown instead of JSON")
    x.add_argument("--one-pass", action="store_true", help="all pages in one prompt when they fit")
    x.add_argument("--dpi", type=float, default=144.0, help="PDF render resolution")
    x.add_argument("--max-tiles", type=int, help="tiles per page image")
    x.add_argument("-o", "--output", help="write here instead of stdout")
    _model_args(x)
    _url_args(x)
    return parser


def _make_llm(args):
    from nanovl.llm import LLM

    return LLM(args.model, device=args.device, dtype=args.dtype)


def _fetcher(args):
    from nanovl.apps.fetch import MediaFetcher

    return MediaFetcher(max_bytes=int(args.max_download_mb * 1024 * 1024), timeout=args.download_timeout,
                        allow_private=args.allow_private_urls, use_ytdlp=args.yt_dlp)


def _session(args, llm, path: str):
    from nanovl.apps.video import VideoOptions, VideoSession

    # more than one question about the same video: compute its prefix once (a grounded summary
    # alone asks two: events and narration)
    several = getattr(args, "ask", None) or getattr(args, "interactive", False) or (
        args.action == "ask" and len(args.question) > 1) or getattr(args, "style", "") == "grounded"
    opts = VideoOptions(fps=args.fps, max_frames=args.max_frames, pruning_rate=args.pruning_rate,
                        use_audio=not args.no_audio, asr_model=args.asr_model, max_context=args.max_context,
                        max_tokens=args.max_tokens, temperature=args.temperature, seed=args.seed,
                        enable_thinking=args.think, reuse_prefix=bool(several),
                        summary=getattr(args, "style", "grounded"))
    return VideoSession(llm, path, opts, progress=not args.no_progress)


def _answer(session, question: str, out, err) -> None:
    from nanovl.apps.long_video import time_range
    from nanovl.apps.video import describe_timing

    answer = session.ask(question)
    print(f"Q: {question}\nA: {answer.text}", file=out)
    if len(answer.parts) > 1:
        # a segmented video: the merged answer above, then what each stretch of it gave
        for start, end, text in answer.parts:
            print(f"   {time_range(start, end)} {' '.join(text.split())}", file=out)
    print(describe_timing(answer, session), file=err)


def _run_video(args, llm, out, err) -> None:
    from nanovl.apps import captions as cap

    with _fetcher(args) as fetcher:
        session = _session(args, llm, fetcher.local(args.source))
        if len(session.segments) > 1:
            print(f"video split into {len(session.segments)} segments to fit the context", file=err)
        if args.action == "summarize":
            from nanovl.apps.video import describe_timing

            points, answer = session.summarize(args.bullets)
            if points:
                print(answer.text, file=out)
            else:
                print("nanovl: the model named no events and no narration; try --style free or a larger "
                      "--max-tokens", file=err)
            print(describe_timing(answer, session), file=err)
            questions = list(args.ask)
        elif args.action == "ask":
            questions = list(args.question)
        else:
            captions = cap.dense_captions(session)
            text = cap.render(captions, args.format, session.info.duration)
            if args.output:
                Path(args.output).write_text(text, encoding="utf-8")
            else:
                out.write(text)
            if args.timeline:
                written = cap.draw_timeline(captions, session.info.duration, args.timeline,
                                            boundaries=[s.start for s in session.segments[1:]])
                print(f"wrote {written}", file=err)
            return
        for q in questions:
            _answer(session, q, out, err)
        if getattr(args, "interactive", False):
            while True:
                print("> ", end="", file=err, flush=True)
                line = sys.stdin.readline()
                if not line or line.strip().lower() in ("", "exit", "quit"):
                    break
                _answer(session, line.strip(), out, err)


def _run_evs_map(args, llm, out, err) -> None:
    from nanovl.apps.evs_map import compute_evs_map, draw_evs_map

    if not 0.0 <= args.pruning_rate < 1.0:
        raise ValueError(f"--pruning-rate must be in [0, 1), got {args.pruning_rate}")
    with _fetcher(args) as fetcher:
        evs = compute_evs_map(llm, fetcher.local(args.source), pruning_rate=args.pruning_rate,
                              fps=args.fps, max_frames=args.max_frames)
    written = draw_evs_map(evs, args.output)
    print(evs.summary(), file=out)
    print(f"wrote {written}", file=err)


def _run_extract(args, llm, out, err) -> None:
    from nanovl.apps import documents
    from nanovl.apps.schemas import load_schema

    schema = None if args.markdown else load_schema(args.schema)
    with _fetcher(args) as fetcher:
        pages, names = documents.load_labeled_pages([fetcher.local(s) for s in args.sources], dpi=args.dpi,
                                                    names=args.sources)
    result = None
    if args.markdown:
        text = documents.to_markdown(llm, pages=pages, max_tokens=args.max_tokens, max_tiles=args.max_tiles,
                                     enable_thinking=args.think)
    else:
        result = documents.extract(llm, pages=pages, schema=schema, one_pass=args.one_pass, page_names=names,
                                   max_tokens=args.max_tokens, max_tiles=args.max_tiles, enable_thinking=args.think)
        text = json.dumps(result.value, indent=2, ensure_ascii=False) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        out.write(text)
    # what parsed is out first; a page that failed or a schema mismatch still fails the command
    if result is not None and not result.is_valid:
        raise documents.ExtractionError(_extraction_problems(result, args.output))


def _extraction_problems(result, output: str | None) -> str:
    problems = list(result.failed)
    if problems:
        where = f" to {output}" if output else ""
        problems[-1] += f" (the pages that parsed were written{where})"
    if result.errors:
        more = len(result.errors) - 3
        shown = "; ".join(result.errors[:3]) + (f" (and {more} more)" if more > 0 else "")
        problems.append(f"{output or 'the extracted JSON'} does not match the schema: {shown}")
    return "; ".join(problems)


def _known_errors() -> tuple[type[BaseException], ...]:
    from nanovl.apps.documents import ExtractionError
    from nanovl.apps.fetch import FetchError
    from nanovl.errors import InvalidRequestError
    from nanovl.inputs.errors import MediaError

    return (FetchError, MediaError, ExtractionError, InvalidRequestError, ValueError, FileNotFoundError,
            OSError)


def _usage_problem(args) -> str | None:
    """A bad flag value or output path, found before any model work (and before speech recognition)."""
    problems = [positive_problem("--fps", getattr(args, "fps", None)),
                positive_problem("--dpi", getattr(args, "dpi", None))]
    if getattr(args, "max_frames", 1) < 1:
        problems.append(f"--max-frames must be >= 1, got {args.max_frames}")
    problems += [output_problem("-o/--output", getattr(args, "output", None)),
                 output_problem("--timeline", getattr(args, "timeline", None))]
    return next((p for p in problems if p), None)


def main(argv: Sequence[str] | None = None, *, llm=None, stdout=None, stderr=None) -> int:
    """Run one workflow command; `llm` reuses a loaded LLM (tests). Returns the exit status."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        args, unknown = build_parser().parse_known_args(list(sys.argv[1:] if argv is None else argv))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    # unknown flags are reported here so the hint names the subcommand's help, not the top level's
    problem = f"unrecognized arguments: {' '.join(unknown)}" if unknown else _usage_problem(args)
    if problem:
        prog = " ".join(["nanovl", args.command] + ([args.action] if args.command == "video" else []))
        print(usage_line(prog, problem), file=err)
        return USAGE_EXIT
    runners = {"video": _run_video, "evs-map": _run_evs_map, "extract": _run_extract}
    try:
        if getattr(args, "max_tokens", 1) < 1:
            raise ValueError("--max-tokens must be >= 1")
        if getattr(args, "bullets", 1) < 1:
            raise ValueError("--bullets must be >= 1")
        runners[args.command](args, llm or _make_llm(args), out, err)
    except _known_errors() as exc:
        print(error_line(exc), file=err)
        return 1
    except KeyboardInterrupt:
        print("nanovl: interrupted", file=err)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
