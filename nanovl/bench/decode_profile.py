"""Where a decode step's time goes: the kernels of one step by name, their busy time against the
step's wall time, and the roofline of the bytes the step must move.

Issue 8's decode target is 90 % of weights / bandwidth at batch 1. A step at the real shape runs
hundreds of small kernels between the big matrix-vector products; this profile says whether the
missing time is in the products themselves (busy time near the step time) or between kernels
(idle gaps), which decides between fusing kernels and a faster GEMV.

    python -m nanovl.bench.decode_profile [--batch 1,16] [--steps 20] [--pdl 0,1,2,auto] [--l2-prefetch-mb 0,16]
        [--out decode_profile.json]

On a GPU it profiles CUDA-graph replays of the real Nano-12B-v2-VL shape in bf16 (eager steps
when the profiler sees no kernels inside a graph); on a CPU the tiny preset's eager steps, by op.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from nanovl.bench import lm as our_bench
from nanovl.bench import roofline as rl
from nanovl.engine.cuda_graphs import DecodeCudaGraphs
from nanovl.ops import pdl as pdl_launch


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m nanovl.bench.decode_profile", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default=None, help="model shape (default: nano-12b-v2-vl on GPU, tiny on CPU)")
    p.add_argument("--device", default=None)
    p.add_argument("--batch", default="1", help="batch sizes, comma-separated (one model for all)")
    p.add_argument("--prompt", type=int, default=256, help="prompt tokens per row before the profiled steps")
    p.add_argument("--steps", type=int, default=20, help="decode steps timed and profiled")
    p.add_argument("--top", type=int, default=25, help="kernel names printed")
    p.add_argument("--bandwidth", type=float, default=None,
                   help="copy bandwidth in bytes/s for the roofline (default: measured here)")
    p.add_argument("--pdl", default=None,
                   help="NANOVL_PDL settings to compare, e.g. 0,1,2,auto (each captures its own graphs; default: the env's)")
    p.add_argument("--l2-prefetch-mb", default=None,
                   help="NANOVL_L2_PREFETCH_MB settings to compare, e.g. 0,16 (MiB of the next projection's "
                        "weight each batch-1 GEMV warms; default: the env's)")
    p.add_argument("--quant", choices=["none", "fp8"], default="none",
                   help="fp8: the LM's projections but lm_head in e4m3 (nanovl bench --quant)")
    p.add_argument("--out", default=None, help="write the results here as JSON")
    return p.parse_args(argv)


def _union_us(intervals: list[tuple[float, float]]) -> float:
    """Length of the union of [start, end) intervals: the time at least one kernel ran."""
    total, end = 0.0, float("-inf")
    for s, e in sorted(intervals):
        if s > end:
            total += e - s
            end = e
        elif e > end:
            total += e - end
            end = e
    return total


def summarize_events(events: list[tuple[str, float, float]], steps: int) -> dict:
    """events: (name, start_us, end_us) of the kernels (or top ops) of `steps` steps.

    Returns per-step busy time (union of intervals), summed kernel time, kernel launches, and a
    table by name sorted by time."""
    by_name: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])
    for name, s, e in events:
        row = by_name[name]
        row[0] += 1
        row[1] += e - s
    table = [{"name": n, "calls_per_step": c / steps, "us_per_step": t / steps}
             for n, (c, t) in sorted(by_name.items(), key=lambda kv: -kv[1][1])]
    return {"kernels_per_step": len(events) / steps,
            "kernel_us_per_step": sum(e - s for _, s, e in events) / steps,
            "busy_us_per_step": _union_us([(s, e) for _, s, e in events]) / steps,
            "by_name": table}


def _kernel_events(prof, device: torch.device) -> list[tuple[str, float, float]]:
    want = "CUDA" if device.type == "cuda" else "CPU"
    out = []
    for ev in prof.events():
        if ev.device_type.name != want:
            continue
        if want == "CPU" and ev.cpu_parent is not None:
            continue  # on the CPU, top-level ops only: children's time is inside their parent's
        out.append((ev.name, float(ev.time_range.start), float(ev.time_range.end)))
    return out


@torch.inference_mode()
def profile_decode(model, batch: int, prompt_len: int, steps: int) -> dict:
    """Time `steps` decode steps (CUDA graphs on a GPU), then profile as many again."""
    lm = model.language_model
    dev = lm.backbone.embeddings.weight.device
    state = lm.new_state(batch)
    ids = torch.randint(0, lm.config.vocab_size, (batch, prompt_len), device=dev)
    tok = lm(ids, state=state, logits_to_keep=1)[:, -1].argmax(-1)
    eager = lambda t: lm(t[:, None], state=state, logits_to_keep=1)[:, -1]  # noqa: E731
    step, mode = eager, "eager"
    if dev.type == "cuda":
        runner = DecodeCudaGraphs(lm, state, max_seq_len=prompt_len + 4 * steps + 16, buckets=(batch,))
        runner.capture()
        step, mode = runner.step, "cuda_graphs"
    for _ in range(3):
        tok = step(tok).argmax(-1)
    rl.sync(dev)
    t0 = time.perf_counter()
    for _ in range(steps):
        tok = step(tok).argmax(-1)
    rl.sync(dev)
    step_s = (time.perf_counter() - t0) / steps

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])

    def profiled(fn):
        nonlocal tok
        with profile(activities=acts) as prof:
            for _ in range(steps):
                tok = fn(tok).argmax(-1)
            rl.sync(dev)
        return _kernel_events(prof, dev)

    events, profiled_mode = profiled(step), mode
    if not events and mode == "cuda_graphs":
        # this profiler did not trace inside graph replays: profile eager steps instead
        events, profiled_mode = profiled(eager), "eager"
    summary = summarize_events(events, steps)
    return {"batch": batch, "prompt": prompt_len, "steps": steps, "timed_mode": mode,
            "profiled_mode": profiled_mode, "step_us": step_s * 1e6, **summary}


def format_table(res: dict, top: int) -> str:
    # the setting, and whether this step's kernels launched with PDL under it (auto: by batch size)
    pdl = (f"NANOVL_PDL={res.get('pdl', 'auto')}: PDL {'on' if res.get('pdl_active') else 'off'}, "
           f"L2 prefetch {res.get('l2_prefetch_mb', 0):g} MiB")
    lines = [f"decode step, batch {res['batch']} ({res['timed_mode']}, {pdl}):"
             f" {res['step_us']:.1f} us"
             f" = {1e6 / res['step_us'] * res['batch']:.1f} tok/s",
             f"roofline (bytes {res['bytes_per_step'] / 1e9:.2f} GB / {res['bandwidth'] / 1e12:.2f} TB/s):"
             f" {res['roofline_us']:.1f} us = {res['roofline_us'] / res['step_us']:.1%} of the step",
             f"profiled ({res['profiled_mode']}): {res['kernels_per_step']:.0f} kernels per step,"
             f" busy {res['busy_us_per_step']:.1f} us, idle {res['step_us'] - res['busy_us_per_step']:.1f} us"
             f" per step", "",
             f"{'kernel':<70} {'calls':>6} {'us/step':>9} {'share':>6}"]
    for row in res["by_name"][:top]:
        lines.append(f"{row['name'][:70]:<70} {row['calls_per_step']:>6.1f} {row['us_per_step']:>9.1f}"
                     f" {row['us_per_step'] / max(res['kernel_us_per_step'], 1e-9):>6.1%}")
    return "\n".join(lines)


def _launches_with_pdl(model, batch: int) -> bool:
    """Whether the decode graphs of `batch` rows capture their kernels with PDL (as DecodeCudaGraphs asks)."""
    with pdl_launch.decode_batch(batch):
        return pdl_launch.pdl_wanted(model.language_model.backbone.embeddings.weight)


def _with_env(settings: dict[str, str], fn):
    """fn() with these environment variables set (NANOVL_PDL, NANOVL_L2_PREFETCH_MB: kernels read them
    as they launch, so graphs captured inside launch with them); the caller's values come back after."""
    before = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)
    try:
        return fn()
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    preset = args.preset or ("nano-12b-v2-vl" if dev.type == "cuda" else "tiny")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    bandwidth = args.bandwidth or rl.measure_device(dev, dtype)["copy_bytes_per_s"]
    model = our_bench.build_model(preset, dev, dtype, quant="fp8" if args.quant == "fp8" else None)
    cfg = model.language_model.config
    run = {"preset": preset, "device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "dtype": str(dtype).removeprefix("torch."), "torch": torch.__version__,
           "date": time.strftime("%Y-%m-%d", time.gmtime()), "bandwidth": bandwidth}
    results = []
    pdl_settings = args.pdl.split(",") if args.pdl else [os.environ.get("NANOVL_PDL", "auto")]
    warm_settings = (args.l2_prefetch_mb.split(",") if args.l2_prefetch_mb
                     else [os.environ.get("NANOVL_L2_PREFETCH_MB", "0")])
    for batch, pdl, warm in ((int(b), p, w) for b in args.batch.split(",") for p in pdl_settings
                             for w in warm_settings):
        env = {"NANOVL_PDL": pdl, "NANOVL_L2_PREFETCH_MB": warm}
        # with it, whether the kernels could take PDL (sm_90+ with Triton's grid dependency control)
        res, active = _with_env(env, lambda: (profile_decode(model, batch, args.prompt, args.steps),
                                              _launches_with_pdl(model, batch)))
        res["pdl"], res["pdl_active"], res["l2_prefetch_mb"] = pdl, active, float(warm)
        res["quant"] = args.quant
        res["bytes_per_step"] = rl.lm_decode_bytes(cfg, batch, args.prompt + args.steps,
                                                   dtype_bytes=torch.finfo(dtype).bits // 8,
                                                   body_bytes=1 if args.quant == "fp8" else None)
        res["roofline_us"] = res["bytes_per_step"] / bandwidth * 1e6
        res.update(run)
        print(format_table(res, args.top) + "\n", flush=True)
        results.append(res)
        if args.out:  # rewritten after each batch size, so a run cut short keeps what it measured
            with open(args.out, "w") as f:
                json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
