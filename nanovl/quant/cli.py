"""`nanovl quantize SRC DST`: an FP8 copy (ModelOpt's layout) of an unquantized checkpoint,
calibrated on requests drawn from the training curriculum or on the user's own JSONL file.

    nanovl quantize path/to/bf16-checkpoint path/to/fp8-copy --samples 64
    nanovl quantize org/model-BF16 fp8-copy --calibration my_requests.jsonl --device cuda

Bad input (SRC missing or already quantized, DST already a checkpoint, an unreadable calibration
file or a bad line in it) prints one "nanovl: error: ..." line and exits 1 before the model loads;
a usage error exits 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from nanovl.apps.cli_args import USAGE_EXIT, OneLineParser, error_line, usage_line


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="nanovl quantize", description=__doc__.split("\n\n")[0],
                      formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", help="unquantized checkpoint folder or hub id")
    p.add_argument("dst", type=Path, help="new folder for the FP8 checkpoint")
    p.add_argument("--samples", type=int, default=32,
                   help="calibration requests drawn from the training curriculum (default 32)")
    p.add_argument("--calibration", type=Path,
                   help='JSONL of your own requests, one OpenAI chat body {"messages": [...]} a line '
                        "(replaces the drawn ones)")
    p.add_argument("--seed", type=int, default=0, help="which curriculum draws (default 0)")
    p.add_argument("--device", default="cpu", help="where calibration runs: cpu (default), cuda, cuda:N")
    p.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                   help="calibration dtype (auto: float32 on a CPU, bfloat16 on CUDA)")
    p.add_argument("--max-num-seqs", type=int, default=8, help="calibration requests decoded together")
    p.add_argument("--per-channel", action="store_true",
                   help="ModelOpt's FP8_PER_CHANNEL_PER_TOKEN: a weight scale per output channel and inputs "
                        "scaled per token at run time; needs no calibration (nanovl runs it on the "
                        "reference path: slower on a GPU than the default per-tensor format)")
    return p


def _usage_problem(args: argparse.Namespace) -> str | None:
    from nanovl.quant.calibration_data import SEED_SHIFT

    if args.samples < 1 or args.max_num_seqs < 1:
        return "--samples and --max-num-seqs must be >= 1"
    if not 0 <= args.seed < 2 ** SEED_SHIFT:
        return f"--seed must be in [0, 2**{SEED_SHIFT})"
    if args.per_channel and args.calibration is not None:
        return "--per-channel scales inputs per token at run time and takes no --calibration"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    problem = _usage_problem(args)
    if problem:
        print(usage_line(parser.prog, problem), file=sys.stderr)
        return USAGE_EXIT
    from nanovl.errors import NanovlError
    from nanovl.quant.calibration_data import read_calibration_file
    from nanovl.quant.quantize import quantize_checkpoint

    try:
        # the file, device and paths are all checked before the model loads
        requests = read_calibration_file(args.calibration) if args.calibration is not None else None
        report = quantize_checkpoint(args.src, args.dst, requests=requests, num_samples=args.samples,
                                     seed=args.seed, device=args.device, dtype=args.dtype,
                                     max_num_seqs=args.max_num_seqs, per_channel_per_token=args.per_channel)
    except (NanovlError, ValueError, OSError) as err:
        print(error_line(err), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("nanovl: interrupted", file=sys.stderr)
        return 130
    print(report.summary())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
