"""Decode GEMMs at the real Nano-12B-v2 dims: cuBLAS (`F.linear`) vs the Triton skinny GEMM, for 1 and 16 rows.

Run on the GPU: `python bench/bench_gemv.py [--quick] [--out gemv.json]` (prints a table last; ~30 s with
compiles and autotuning, --quick: one row only, fewer replays). Each time is the median replay of a CUDA graph
of CALLS back-to-back calls (no launch gaps) that cycle over enough weight copies to miss the L2 cache, as
the layers of a decode step do; TB/s counts weight + x + out bytes once per call.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

from nanovl.bench.roofline import lm_linear_shapes, measure_device
from nanovl.model.presets import preset_text_config

# (name, N, K): weight [N, K] as nn.Linear holds it
SHAPES = lm_linear_shapes(preset_text_config("nano-12b-v2-vl"))
CALLS = 20
# weight bytes one graph cycles over: several times the H200's 50 MB L2
CYCLE_BYTES = 256 << 20


def graph_us(fns: list, reps: int) -> float:
    """Median microseconds per call of a CUDA graph that runs each of `fns` once."""
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for fn in fns:
            fn()
    graph.replay()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(reps):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times) * 1e3 / len(fns)


def _config(kernel) -> str:
    cfg = kernel.best_config
    return f"n{cfg.kwargs['BLOCK_N']} k{cfg.kwargs['BLOCK_K']} w{cfg.num_warps} s{cfg.num_stages}"


def bench_shape(name: str, n: int, k: int, m: int, reps: int) -> dict:
    """cuBLAS and Triton on one decode GEMM: times, bandwidth, the autotuned config and their max difference."""
    from nanovl.ops.linear import kernel

    copies = max(1, min(CALLS, -(-CYCLE_BYTES // (n * k * 2))))
    ws = [torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * k ** -0.5 for _ in range(copies)]
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    # 1) first call autotunes (and compiles) outside any graph
    t0 = time.perf_counter()
    y = kernel.skinny_linear_triton(x, ws[0])
    torch.cuda.synchronize()
    tune_s = time.perf_counter() - t0
    y_ref = F.linear(x, ws[0]).float()
    diff = ((y.float() - y_ref).abs().max() / y_ref.abs().max()).item()
    # 2) graphs of CALLS calls each
    cublas = graph_us([lambda w=ws[i % copies]: F.linear(x, w) for i in range(CALLS)], reps)
    triton_ = graph_us([lambda w=ws[i % copies]: kernel.skinny_linear_triton(x, w) for i in range(CALLS)], reps)
    nbytes = (n * k + m * k + m * n) * 2
    tuned = kernel._gemv_fwd_kernel if m == 1 else kernel._skinny_dot_fwd_kernel
    return {"shape": name, "M": m, "N": n, "K": k, "bytes": nbytes, "cublas_us": cublas, "triton_us": triton_,
            "cublas_tb_s": nbytes / cublas * 1e-6, "triton_tb_s": nbytes / triton_ * 1e-6,
            "faster": "triton" if triton_ < cublas else "cublas", "config": _config(tuned),
            "max_rel_diff": diff, "tune_s": tune_s}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--quick", action="store_true", help="M=1 only, 5 replays a graph")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        sys.exit("bench_gemv: no CUDA device here; run it on the GPU machine")
    import triton

    t0 = time.perf_counter()
    reps = 5 if args.quick else 20
    # the same copy-bandwidth measurement as `nanovl bench` and decode_profile, so the figures compare
    copy_bw = measure_device(torch.device("cuda"), torch.bfloat16)["copy_bytes_per_s"]
    rows = []
    for name, n, k in SHAPES:
        for m in (1,) if args.quick else (1, 16):
            rows.append(bench_shape(name, n, k, m, reps))
            torch.cuda.empty_cache()
    meta = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "triton": triton.__version__,
            # NANOVL_PDL=1 or 2 launches the Triton calls with PDL (auto, outside a decode step: plain)
            "pdl": os.environ.get("NANOVL_PDL", "auto"),
            "copy_bytes_per_s": copy_bw, "calls_per_graph": CALLS, "wall_s": time.perf_counter() - t0}
    if args.out:
        with open(args.out, "w") as f:
            json.dump({**meta, "rows": rows}, f, indent=1)
    print(f"{meta['device']}  torch {meta['torch']}  triton {meta['triton']}  NANOVL_PDL={meta['pdl']}  "
          f"copy {copy_bw / 1e12:.2f} TB/s  "
          f"({meta['wall_s']:.0f} s)")
    print(f"{'shape':15s} {'M':>3s} {'N':>6s} {'K':>6s} {'cublas us':>9s} {'triton us':>9s} {'cublas TB/s':>11s} "
          f"{'triton TB/s':>11s} {'faster':>7s} {'speedup':>7s} {'config':>15s} {'rel diff':>8s} {'tune s':>6s}")
    for r in rows:
        print(f"{r['shape']:15s} {r['M']:3d} {r['N']:6d} {r['K']:6d} {r['cublas_us']:9.1f} {r['triton_us']:9.1f} "
              f"{r['cublas_tb_s']:11.2f} {r['triton_tb_s']:11.2f} {r['faster']:>7s} "
              f"{r['cublas_us'] / r['triton_us']:7.2f} {r['config']:>15s} {r['max_rel_diff']:8.1e} {r['tune_s']:6.1f}")


if __name__ == "__main__":
    main()
