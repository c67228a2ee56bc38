"""Time the work a sampled decode step does between two replays: the filters (temperature, top-k,
top-p) and the draw, as the reference ops (a sort of the vocabulary, noise per row) and as the
Triton kernels (nanovl/ops/sampling/kernel.py), per batch size, at the real vocabulary.

    python bench/bench_sampling.py [--vocab 131072] [--batches 1,16,64] [--top-k 50] [--out sampling.json]

Prints a table and writes JSON. On a CPU only the reference runs (there are no kernels to time).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from nanovl.ops.sampling.ref import apply_temperature_top_k_top_p_min_p_ref, sample_ref


def _time_ms(fn, dev: torch.device, reps: int) -> float:
    """Median wall time of fn() in ms, each call synchronised (what the step between replays waits)."""
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        fn()
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--vocab", type=int, default=131072)
    p.add_argument("--batches", default="1,16,64")
    p.add_argument("--reps", type=int, default=50)
    p.add_argument("--top-k", type=int, default=0, help="every row's top_k as well (0: top-p alone)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kernels = None
    if dev.type == "cuda":
        from nanovl.ops.sampling import kernel as kernels
    rows = []
    for b in (int(x) for x in args.batches.split(",")):
        torch.manual_seed(b)
        # LM-like logits: a spread of a few units, as the real model's (and the random bench model's)
        logits = torch.randn(b, args.vocab, device=dev) * 3
        temp = torch.full((b,), 0.6, device=dev)
        top_p = torch.full((b,), 0.95, device=dev)
        seeds = torch.randint(0, 2 ** 62, (b,), device=dev)
        top_k = torch.full((b,), args.top_k, device=dev) if args.top_k > 0 else None
        ref = lambda: sample_ref(apply_temperature_top_k_top_p_min_p_ref(logits, temp, top_k, top_p, None), seeds)  # noqa: E731
        row = {"batch": b, "vocab": args.vocab, "reference_ms": _time_ms(ref, dev, args.reps)}
        if kernels is not None:
            filt = lambda: kernels.apply_temperature_top_k_top_p_min_p_triton(logits, temp, top_k, top_p, None)  # noqa: E731
            filtered = filt()
            row["kernel_filter_ms"] = _time_ms(filt, dev, args.reps)
            row["kernel_sample_ms"] = _time_ms(lambda: kernels.sample_triton(filtered, seeds), dev, args.reps)
            row["kernel_ms"] = _time_ms(lambda: kernels.sample_triton(filt(), seeds), dev, args.reps)
            # the reference's sort-based filter before the kernel's draw (a choice for one row)
            row["ref_filter_kernel_draw_ms"] = _time_ms(lambda: kernels.sample_triton(
                apply_temperature_top_k_top_p_min_p_ref(logits, temp, top_k, top_p, None), seeds), dev, args.reps)
        rows.append(row)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    res = {"device": name, "date": time.strftime("%Y-%m-%d"), "temperature": 0.6, "top_k": args.top_k, "top_p": 0.95,
           "rows": rows}
    knobs = f"temperature 0.6, {f'top_k {args.top_k}, ' if args.top_k else ''}top_p 0.95"
    print(f"{name} | vocab {args.vocab} | {knobs} | ms per call, synchronised")
    print(f"{'batch':>6s} {'reference':>10s} {'kernels':>10s} {'filter':>8s} {'draw':>8s} {'ref filter+draw':>16s}")
    for r in rows:
        k = [f"{r[key]:{w}.3f}" if key in r else f"{'-':>{w}s}" for key, w in
             (("kernel_ms", 10), ("kernel_filter_ms", 8), ("kernel_sample_ms", 8), ("ref_filter_kernel_draw_ms", 16))]
        print(f"{r['batch']:6d} {r['reference_ms']:10.3f} {' '.join(k)}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
