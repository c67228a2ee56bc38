"""Where a tiny-model training step's time goes: seconds per step against batch size, and how busy the GPU is.

Run on the GPU: `python bench/bench_train_step.py [--batch-sizes 32,64,128,256] [--out train_step.json]`
(prints a table last). The H200 runs so far made 2.4-3.3 steps/s whether a step held 256 one-tile
text tiles or 64 pages of ~12 tiles each (docs/PERFORMANCE.md), though the second is several times
the work: that smells of per-step overhead (kernel launches, host syncs), not of the GPU's speed.
This measures it. (Its answer, H200 2026-12-02: 0.126 s for a batch-64 step, flat samples/s above 64;
the loop around the step was the overhead, and run 8 cut it: docs/PERFORMANCE.md.) Each row is a full training step as `nanovl.train.recipe` runs it (training op
mode, bf16 autocast, AdamW, gradient clipping) on one stage-2 batch drawn once, so the timing holds
no data loading. `gpu_busy` is the summed kernel time of a profiled step over its wall time: well
under 1 means the host, not the GPU, sets the pace, and a larger batch costs little more time.
(torch.compile is not offered: on the CPU, torch 2.13's inductor failed on the ViT + LM with dynamic
shapes after 5 minutes of compiling, "cannot determine truth value of Relational".)
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from nanovl.model.presets import preset_config
from nanovl.ops.dispatch import use_training_ops
from nanovl.train.dataset import CurriculumStream, StageSchedule, pack
from nanovl.train.recipe import PRESET, make_optimizer, media_ids, new_model, pixel_dtype_for, train_step

TOKENIZER = Path(__file__).resolve().parents[1] / "nanovl" / "assets" / "tiny"


def draw_batch(n: int, seed: int) -> list:
    """`n` stage-2 examples (the full curriculum mix), built as the training loader builds them."""
    from tokenizers import Tokenizer

    cfg = preset_config(PRESET)
    # every batch index is past both stage boundaries, so the stream draws stage 2's mix
    stream = CurriculumStream(str(TOKENIZER), seed=seed, batch_size=n, start=0, stage_of=StageSchedule(0, 0),
                              stage0_batch_size=n, image_size=cfg.force_image_size, max_tiles=cfg.max_num_tiles,
                              mean=cfg.norm_mean, std=cfg.norm_std)
    return stream.batch(10_000, Tokenizer.from_file(str(TOKENIZER / "tokenizer.json")))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(model, opt, batch: list, ids, device: torch.device, steps: int, warmup: int,
               token_cap: int | None) -> float:
    """Median seconds of one training step on `batch` (after `warmup` untimed ones)."""
    times = []
    for i in range(warmup + steps):
        _sync(device)
        t0 = time.perf_counter()
        train_step(model, opt, batch, ids, use_amp=device.type == "cuda", token_cap=token_cap)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def profile_step(model, opt, batch: list, ids, device: torch.device, token_cap: int | None) -> dict:
    """Kernel count and busy fraction of one step (operator count on the CPU, which has no kernels)."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        _sync(device)
        t0 = time.perf_counter()
        time_steps(model, opt, batch, ids, device, steps=1, warmup=0, token_cap=token_cap)
        wall = time.perf_counter() - t0
    events = prof.events()
    if device.type != "cuda":
        return {"aten_ops": sum(1 for e in events if e.name.startswith("aten::") and e.cpu_parent is None),
                "wall_s": wall}
    kernels = [e for e in events if e.device_type == torch.autograd.DeviceType.CUDA]
    busy = sum(e.time_range.elapsed_us() for e in kernels) / 1e6
    return {"kernels": len(kernels), "kernel_s": busy, "wall_s": wall, "gpu_busy": busy / wall}


def run(batch_sizes: list[int], device: torch.device, steps: int, warmup: int, token_cap: int | None,
        seed: int) -> list[dict]:
    cfg = preset_config(PRESET)
    ids = media_ids(TOKENIZER)
    t0 = time.perf_counter()
    full = draw_batch(max(batch_sizes), seed)
    print(f"drew {len(full)} stage-2 examples in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    rows = []
    model = new_model(cfg, seed).to(device).train()
    opt = make_optimizer(model, 5e-4, 0.05)
    for bs in batch_sizes:
        # packed (and pinned on the GPU) as the training loader hands it over
        batch = pack(full[:bs], pixel_dtype_for(device))
        batch = batch.pin_memory() if device.type == "cuda" else batch
        row = {"batch": bs, "tiles": sum(m.pixel_values.shape[0] for ex in batch for m in ex.media),
               "max_tokens": max(len(ex.ids) for ex in batch)}
        try:
            with use_training_ops():
                row["step_s"] = time_steps(model, opt, batch, ids, device, steps, warmup, token_cap)
                row.update(profile_step(model, opt, batch, ids, device, token_cap))
            row["samples_per_s"] = bs / row["step_s"]
        except torch.OutOfMemoryError as e:  # the largest batches may not fit: a result, not a crash
            row["error"] = f"out of memory: {e}"[:200]
        if device.type == "cuda":
            row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
            torch.cuda.reset_peak_memory_stats(device)
            torch.cuda.empty_cache()
        print(f"[bench] {json.dumps(row)}", file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict]) -> str:
    head = f"{'batch':>5} {'tiles':>6} {'step s':>8} {'samples/s':>10} {'kernels/ops':>11} {'gpu busy':>9}"
    lines = [head]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['batch']:>5} {r['tiles']:>6}  error: {r['error'][:80]}")
            continue
        count = r.get("kernels", r.get("aten_ops", 0))
        busy = f"{r['gpu_busy']:.0%}" if "gpu_busy" in r else "-"
        lines.append(f"{r['batch']:>5} {r['tiles']:>6} {r['step_s']:>8.3f} "
                     f"{r['samples_per_s']:>10.1f} {count:>11} {busy:>9}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", default="32,64,128,256")
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (median)")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--token-cap", type=int, default=128, help="as the run's --token-cap")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="results JSON")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    rows = run(sizes, device, args.steps, args.warmup, args.token_cap, args.seed)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{name}  torch {torch.__version__}  preset {PRESET}")
    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
