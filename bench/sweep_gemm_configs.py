"""Time every candidate config of the skinny GEMM on each decode projection shape, pinned one by one.

The autotuner only picks among the configs listed in `nanovl/ops/linear/kernel.py`; this sweep times
those and the extra candidates below on each real Nano-12B-v2 shape, at 1 row (the GEMV kernel) and
16 rows (the tl.dot kernel), so a config earns its place in the list by a device measurement.

    python bench/sweep_gemm_configs.py [--rows 1,16] [--out sweep.json]     # on the GPU, ~1-2 min

Each time is the median replay of a CUDA graph of CALLS calls cycling over weight copies larger
than L2 (as bench_gemv.py times them). A config the GPU cannot run (shared memory, registers) is
listed with its error instead of a time. Prints, per shape and row count, the fastest config against
the fastest of the autotuner's own list, and writes every row as JSON.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_gemv import CALLS, CYCLE_BYTES, graph_us  # noqa: E402

from nanovl.bench.roofline import lm_linear_shapes  # noqa: E402
from nanovl.model.presets import preset_text_config  # noqa: E402

# (BLOCK_N, BLOCK_K, num_warps, num_stages) tried beside the autotuner's lists. The dot kernel's
# shared memory is (16 + BLOCK_N) * BLOCK_K * 2 bytes a stage in bf16; the list in kernel.py must
# also fit fp32 inputs, so a winner here that does not is noted, not copied blindly
GEMV_EXTRA = [(8, 256, 4, 2), (4, 512, 4, 2), (8, 512, 8, 2), (16, 256, 4, 3), (8, 1024, 8, 3),
              (16, 512, 8, 2), (32, 512, 8, 2)]
DOT_EXTRA = [(16, 256, 4, 4), (16, 512, 8, 3), (32, 256, 8, 3), (64, 128, 4, 3), (128, 128, 8, 2),
             (32, 128, 4, 4), (16, 1024, 8, 2), (64, 256, 4, 3)]


Config = tuple[int, int, int, int]


def listed_configs(rows: int) -> list[Config]:
    """The autotuner's table of the kernel that serves `rows` rows (needs Triton)."""
    from nanovl.ops.linear import kernel

    tuned = kernel._gemv_fwd_kernel.configs if rows == 1 else kernel._skinny_dot_fwd_kernel.configs
    return [(c.kwargs["BLOCK_N"], c.kwargs["BLOCK_K"], c.num_warps, c.num_stages) for c in tuned]


def candidates(rows: int, listed: list[Config]) -> list[tuple[Config, bool]]:
    """(config, listed in the autotuner's table): the table first, then the extras it lacks."""
    extra = [c for c in (GEMV_EXTRA if rows == 1 else DOT_EXTRA) if c not in listed]
    return [(c, True) for c in listed] + [(c, False) for c in extra]


def sweep(shapes: list[tuple[str, int, int]], rows_list: list[int],
          time_config: Callable[[int, int, int, Config], float],
          listed_for: Callable[[int], list[Config]] = listed_configs) -> list[dict]:
    """Time every candidate on every (shape, rows); `time_config(rows, n, k, config)` -> us a call."""
    out = []
    for name, n, k in shapes:
        for rows in rows_list:
            nbytes = (n * k + rows * k + rows * n) * 2
            for cfg, listed in candidates(rows, listed_for(rows)):
                row = {"shape": name, "M": rows, "N": n, "K": k, "config": "n{} k{} w{} s{}".format(*cfg),
                       "listed": listed, "us": None, "tb_s": None, "error": None}
                try:
                    row["us"] = time_config(rows, n, k, cfg)
                    row["tb_s"] = nbytes / row["us"] * 1e-6
                except Exception as e:  # out of resources, a compile error: this config is out
                    row["error"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                out.append(row)
    return out


def best_by_case(rows: list[dict]) -> list[dict]:
    """Per (shape, M): the fastest config overall and the fastest of the autotuner's list."""
    cases: dict[tuple[str, int], list[dict]] = {}
    for r in rows:
        if r["us"] is not None:
            cases.setdefault((r["shape"], r["M"]), []).append(r)
    summary = []
    for (shape, m), rs in cases.items():
        best = min(rs, key=lambda r: r["us"])
        listed = [r for r in rs if r["listed"]]
        best_listed = min(listed, key=lambda r: r["us"]) if listed else None
        summary.append({"shape": shape, "M": m, "best": best["config"], "best_us": best["us"],
                        "best_listed": best_listed and best_listed["config"],
                        "best_listed_us": best_listed and best_listed["us"],
                        "gain": best_listed["us"] / best["us"] if best_listed else None})
    return summary


def _cuda_timer(reps: int) -> Callable[[int, int, int, Config], float]:
    import triton

    from nanovl.ops.linear import kernel

    def time_config(rows: int, n: int, k: int, cfg: Config) -> float:
        copies = max(1, min(CALLS, -(-CYCLE_BYTES // (n * k * 2))))
        ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * k ** -0.5 for _ in range(copies)]
        x = torch.randn(rows, k, device="cuda", dtype=torch.bfloat16)
        out = torch.empty(rows, n, device="cuda", dtype=torch.bfloat16)
        config = triton.Config({"BLOCK_N": cfg[0], "BLOCK_K": cfg[1]}, num_warps=cfg[2], num_stages=cfg[3])
        kernel._launch(x, ws[0], None, out, config)  # compiles outside the graph, and raises if it cannot run
        torch.cuda.synchronize()
        return graph_us([lambda w=ws[i % copies]: kernel._launch(x, w, None, out, config) for i in range(CALLS)],
                        reps)

    return time_config


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default="1,16", help="row counts, comma-separated (1: GEMV kernel, 2-16: dot kernel)")
    p.add_argument("--reps", type=int, default=10, help="graph replays a config (median)")
    p.add_argument("--out", default=None, help="write the rows and the summary as JSON here")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("sweep_gemm_configs: no CUDA device here; run it on the GPU machine")
    t0 = time.perf_counter()
    rows = sweep(lm_linear_shapes(preset_text_config("nano-12b-v2-vl")), [int(r) for r in args.rows.split(",")],
                 _cuda_timer(args.reps))
    summary = best_by_case(rows)
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "calls_per_graph": CALLS,
            "wall_s": time.perf_counter() - t0}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({**meta, "rows": rows, "summary": summary}, f, indent=1)
    print(f"{meta['device']}  torch {meta['torch']}  ({meta['wall_s']:.0f} s)")
    for r in rows:
        if r["error"]:
            print(f"  {r['shape']:15s} M={r['M']:<2d} {r['config']:>17s}  failed: {r['error']}")
    print(f"{'shape':15s} {'M':>3s} {'best config':>17s} {'us':>8s} {'best listed':>17s} {'us':>8s} {'gain':>6s}")
    for s in summary:
        print(f"{s['shape']:15s} {s['M']:3d} {s['best']:>17s} {s['best_us']:8.1f} {s['best_listed'] or '-':>17s} "
              f"{s['best_listed_us'] or float('nan'):8.1f} {s['gain'] or float('nan'):6.3f}")


if __name__ == "__main__":
    main()
