"""`nanovl eval` on the command line: arguments (one-line usage errors, an unwritable --json refused
before the eval), the run through `evaluate.evaluate`, the table, and the --json file.

    python -m nanovl.train.eval_cli --model DIR --n 20 --tasks invoice,sums --json results.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from nanovl.train import evaluate as E


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from nanovl.apps.cli_args import OneLineParser, output_problem

    p = OneLineParser(prog="nanovl eval", description=E.__doc__.splitlines()[0])
    p.add_argument("--model", default=None, help="checkpoint folder or hub id (default: the bundled tiny model)")
    p.add_argument("--n", type=int, default=100, help="held-out cases per task")
    p.add_argument("--tasks", default=",".join(E.TASK_NAMES),
                   help=f"comma-separated subset of {','.join(E.TASK_NAMES)}")
    p.add_argument("--seed-base", type=int, default=E.DEFAULT_SEED_BASE, help="first held-out seed (keep >= 2**64)")
    p.add_argument("--thinking", choices=("off", "on"), default="off",
                   help="reasoning switch of the non-arithmetic tasks (the apps' default is off)")
    p.add_argument("--json", default=None, help="also write the full results (outputs included) here")
    p.add_argument("--device", default="auto")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--max-num-seqs", type=int, default=32, help="requests decoded together")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (1 is faster on a busy machine)")
    args = p.parse_args(argv)
    # a --json that cannot be written would otherwise fail only after the whole eval
    problem = output_problem("--json", args.json)
    if problem:
        p.error(problem)
    return args


def _bad_args(tasks: list[str], n: int) -> str | None:
    unknown = sorted(set(tasks) - set(E.TASKS))
    if unknown:
        return f"unknown task(s) {unknown}; known: {','.join(E.TASK_NAMES)}"
    if not tasks:
        return "--tasks is empty"
    return "--n must be >= 1" if n < 1 else None


def main(argv: list[str] | None = None) -> int:
    """Run the eval, print the table, optionally write JSON."""
    from nanovl.llm import LLM

    args = parse_args(argv)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    problem = _bad_args(tasks, args.n)
    if problem:
        print(f"nanovl: error: {problem}", file=sys.stderr)
        return 1
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        llm = LLM(args.model, device=args.device, dtype=args.dtype, max_num_seqs=args.max_num_seqs)
    except (ValueError, OSError) as err:
        print(f"nanovl: error: {err}", file=sys.stderr)
        return 1
    result = E.evaluate(llm, {t: args.n for t in tasks}, seed_base=args.seed_base, thinking=args.thinking == "on")
    result["model"] = str(args.model or "bundled tiny (nanovl/assets/tiny)")
    result["seconds"] = time.perf_counter() - t0
    gen = sum(r["generated_tokens"] for r in result["tasks"].values())
    gen_s = sum(r["generate_s"] for r in result["tasks"].values())
    print(f"nanovl eval: {result['model']}, {args.n} per task, seed base {args.seed_base}, thinking {args.thinking}")
    print(E.format_table(result))
    print(f"{result['seconds']:.1f} s in all; {gen} tokens generated at {gen / max(gen_s, 1e-9):.1f} tok/s")
    if args.json:
        try:
            Path(args.json).write_text(json.dumps(result, indent=1, default=str) + "\n")
        except OSError as err:
            print(f"nanovl: error: cannot write --json {args.json}: {err.strerror or err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
