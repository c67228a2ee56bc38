"""`nanovl batch INPUT.jsonl -o OUT.jsonl [--model M] [--ray --replicas N]`: run an OpenAI Batch file.

Bad input (missing file, unwritable output, not JSONL, an output that exists without --resume or
--overwrite) prints one "nanovl: error: ..." line and exits before the model loads.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from nanovl.apps.cli_args import USAGE_EXIT, OneLineParser, error_line, positive_problem, usage_line
from nanovl.engine_flags import add_engine_flags, engine_kwargs


EPILOG = """records: one per request, written as each finishes (so not in input order; with --ray a
  replica's chunk at a time), in the OpenAI Batch output format; a bad line gets a 4xx record.
exit status: 0 when the job ran (some records may hold errors), 1 for an input or output
  problem found before the model loads, 2 for a usage error, 130 when interrupted (--resume
  continues)."""


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="nanovl batch", description=__doc__.split("\n\n")[0], epilog=EPILOG,
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", type=Path, help="JSONL: one {custom_id, method, url, body} request per line")
    p.add_argument("-o", "--output", type=Path, required=True, help="JSONL of results, one record per request")
    p.add_argument("--model", help="checkpoint folder or hub id (default: the bundled tiny model)")
    p.add_argument("--resume", action="store_true", help="keep the records OUTPUT holds and run only the rest (5xx records: again)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUTPUT")
    p.add_argument("--allowed-media-root", type=Path, help="file media must lie below this folder "
                   "(default: the input file's folder)")
    p.add_argument("--max-media-count", type=int, default=16, help="images + videos per request")
    p.add_argument("--max-media-bytes", type=int, default=64 * 2**20, help="bytes per image or video")
    r = p.add_argument_group("Ray (scale out)")
    r.add_argument("--ray", action="store_true", help="run on Ray actors, one model each")
    r.add_argument("--replicas", type=int, default=1, help="actors (model copies), default 1")
    r.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPUs Ray reserves for each replica (default 1)")
    r.add_argument("--gpus-per-replica", type=float, help="default: 1 when the cluster has a GPU per replica, else 0")
    r.add_argument("--ray-address", help="cluster to join (default: $RAY_ADDRESS, else a local Ray)")
    r.add_argument("--chunk-size", type=int, help="requests handed to a replica at a time (default: 4 x max-num-seqs)")
    r.add_argument("--max-attempts", type=int, default=2, help="tries per request when a replica dies")
    add_engine_flags(p)
    return p


def _usage_problem(args: argparse.Namespace) -> str | None:
    if args.replicas < 1:
        return f"--replicas must be >= 1, got {args.replicas}"
    if not args.ray and (args.replicas != 1 or args.ray_address or args.gpus_per_replica is not None):
        return "--replicas, --gpus-per-replica and --ray-address need --ray"
    if args.max_attempts < 1 or (args.chunk_size is not None and args.chunk_size < 1):
        return "--max-attempts and --chunk-size must be >= 1"
    if args.max_media_count < 1 or args.max_media_bytes < 1:
        return "--max-media-count and --max-media-bytes must be >= 1"
    if args.allowed_media_root is not None and not args.allowed_media_root.is_dir():
        return f"--allowed-media-root {args.allowed_media_root} is not a folder"
    return positive_problem("--cpus-per-replica", args.cpus_per_replica)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _usage_problem(args)
    if problem:
        print(usage_line(parser.prog, problem), file=sys.stderr)
        return USAGE_EXIT
    from nanovl.batch import run_batch
    from nanovl.errors import NanovlError

    try:
        summary = run_batch(args.input, args.output, model=args.model, ray=args.ray, replicas=args.replicas,
                            cpus_per_replica=args.cpus_per_replica, gpus_per_replica=args.gpus_per_replica,
                            ray_address=args.ray_address, chunk_size=args.chunk_size, max_attempts=args.max_attempts,
                            allowed_media_root=args.allowed_media_root, max_media_count=args.max_media_count,
                            max_media_bytes=args.max_media_bytes, resume=args.resume, overwrite=args.overwrite,
                            progress=sys.stderr, **engine_kwargs(args))
    except (NanovlError, ValueError, OSError, RuntimeError) as err:
        print(error_line(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nanovl: interrupted; the records written so far are kept (rerun with --resume)", file=sys.stderr)
        return 130
    print(summary.line(), file=sys.stderr)
    if summary.by_replica and len(summary.by_replica) > 1:
        print("batch: requests by replica: " + ", ".join(f"#{k}: {n}" for k, n in sorted(summary.by_replica.items())),
              file=sys.stderr)
    return 0
