"""Where an engine decode step's host time goes: LLMEngine.step phase by phase, then cProfile's top.

`nanovl bench` times one greedy request through LLMEngine ("decode b1 engine") beside bare graph
replays ("decode b1"); the difference is host work the GPU waits for. This runs the same request
and splits each step's wall time into its phases (schedule, the runner's launch, the sampler, whose
`.tolist()` waits for the GPU, the scheduler's update, the outputs), so the next cut is aimed.

    python bench/engine_step_profile.py [--steps 64] [--batch 1] [--top-p] [--graphs/--no-graphs]
        [--lookahead/--no-lookahead] [--out prof.json]

It first times the steps bare, then (on a GPU) traces their kernels: the GPU's busy time against the
step's wall time tells host stalls from GPU work, and the kernels outside the graph are listed.

On a GPU the model is the random nano-12b-v2-vl in bf16 (as the bench); on a CPU the tiny preset.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import time
from collections import defaultdict
from typing import Callable

import torch

from nanovl.bench import lm as our_bench
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.tokenizer import Tokenizer


def _timed(totals: dict[str, float], name: str, fn: Callable) -> Callable:
    def wrapper(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += time.perf_counter() - t0
    return wrapper


class _TimedSampler:
    """The engine's sampler with both entries timed: `__call__` reads the ids back (it waits for the
    GPU), `draw` leaves them on the device (the lookahead's path)."""

    def __init__(self, sampler, totals: dict[str, float]):
        self._call = _timed(totals, "  sampler (waits for the GPU)", sampler)
        self.draw = _timed(totals, "  sampler.draw (no wait)", sampler.draw)

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)


def _instrument(engine: LLMEngine, totals: dict[str, float]) -> None:
    """Wrap the step's phases on this engine instance (the classes stay as they are)."""
    engine.scheduler.schedule = _timed(totals, "scheduler.schedule", engine.scheduler.schedule)
    engine.runner.execute = _timed(totals, "runner.execute", engine.runner.execute)
    engine.runner.decode = _timed(totals, "  runner.decode", engine.runner.decode)
    if hasattr(engine.runner, "_graph_decode"):
        engine.runner._graph_decode = _timed(totals, "    runner._graph_decode", engine.runner._graph_decode)
    engine._sample = _timed(totals, "engine._sample", engine._sample)
    engine.sampler = _TimedSampler(engine.sampler, totals)
    engine.scheduler.update_from_output = _timed(totals, "scheduler.update_from_output",
                                                 engine.scheduler.update_from_output)
    engine._output = _timed(totals, "engine._output", engine._output)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default=None, help="model shape (default: nano-12b-v2-vl on GPU, tiny on CPU)")
    p.add_argument("--steps", type=int, default=64)
    p.add_argument("--prompt", type=int, default=256, help="prompt tokens")
    p.add_argument("--batch", type=int, default=1, help="requests decoded together")
    p.add_argument("--top-p", action="store_true", help="a seeded top-p draw (temperature 0.6, top_p 0.95)")
    p.add_argument("--graphs", action=argparse.BooleanOptionalAction, default=True, help="CUDA-graph decode")
    p.add_argument("--lookahead", action=argparse.BooleanOptionalAction, default=True, help="decode lookahead")
    p.add_argument("--top", type=int, default=25, help="cProfile rows to print")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = args.preset or ("nano-12b-v2-vl" if dev.type == "cuda" else "tiny")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    model = our_bench.build_model(preset, dev, dtype)
    config = EngineConfig(device=str(dev), dtype=str(dtype).removeprefix("torch."), max_num_seqs=args.batch,
                          cuda_graphs=args.graphs and dev.type == "cuda", decode_lookahead=args.lookahead)
    engine = LLMEngine(config, model=model, tokenizer=Tokenizer.from_dir(our_bench.TINY_TOKENIZER))
    prompts, params = our_bench.engine_requests(model, args.prompt, args.steps, batch=args.batch, sampled=args.top_p)

    def run(on_decode_step: Callable[[], None] | None = None) -> int:
        """The requests to the end; `on_decode_step` runs once every prompt has had its step, and the
        steps after it are counted and returned."""
        for prompt, p in zip(prompts, params):
            engine.add_request(prompt, p)
        started: set[str] = set()
        while len(started) < args.batch:  # the prompts (several steps when they do not fit one)
            started |= {o.req_id for o in engine.step() if o.token_ids}
        if on_decode_step:
            on_decode_step()
        steps = 0
        while engine.has_unfinished_requests():
            engine.step()
            steps += 1
        return steps

    run()  # compiles, autotunes and captures outside what is measured
    marks: dict[str, float] = {}

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def mark() -> None:
        sync()
        marks["t0"] = time.perf_counter()

    steps = run(mark)
    sync()
    bare_us = (time.perf_counter() - marks["t0"]) / steps * 1e6
    kernels = None
    if dev.type == "cuda":
        from torch.profiler import ProfilerActivity, profile

        from nanovl.bench.decode_profile import _kernel_events, summarize_events

        prof = profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA])
        run(lambda: (sync(), prof.start()))
        sync()
        prof.stop()
        kernels = summarize_events(_kernel_events(prof, dev), steps)
    totals: dict[str, float] = defaultdict(float)
    _instrument(engine, totals)
    cprof = cProfile.Profile()

    def start() -> None:
        sync()
        totals.clear()
        marks["t0"] = time.perf_counter()
        cprof.enable()

    steps = run(start)
    cprof.disable()
    wall = time.perf_counter() - marks["t0"]
    print(f"{preset} on {torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu'}, graphs {config.cuda_graphs}, "
          f"lookahead {config.decode_lookahead}, batch {args.batch}{' top-p' if args.top_p else ''}: {steps} decode "
          f"steps, {bare_us:.0f} us a step bare ({args.batch * 1e6 / bare_us:.1f} tok/s); {engine.num_lookahead_steps} steps went ahead")
    if kernels is not None:
        print(f"GPU busy {kernels['busy_us_per_step']:.0f} us a step ({kernels['busy_us_per_step'] / bare_us:.1%} of the"
              f" bare step), {kernels['kernels_per_step']:.0f} kernels a step; the largest:")
        for row in kernels["by_name"][:args.top]:
            print(f"  {row['us_per_step']:9.1f} us  {row['calls_per_step']:5.1f}x  {row['name'][:90]}")
    print(f"with the phases timed and cProfile on: {wall / steps * 1e6:.0f} us a step")
    print(f"{'phase':40s} {'us/step':>9s} {'share':>7s}")
    phases = {name: sec / steps * 1e6 for name, sec in totals.items()}
    for name, us in phases.items():
        print(f"{name:40s} {us:9.1f} {us / (wall / steps * 1e6):7.1%}")
    buf = io.StringIO()
    pstats.Stats(cprof, stream=buf).sort_stats("tottime").print_stats(args.top)
    print(buf.getvalue())
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"preset": preset, "device": str(dev), "graphs": config.cuda_graphs,
                       "lookahead": config.decode_lookahead, "batch": args.batch, "top_p": args.top_p, "steps": steps, "bare_step_us": bare_us,
                       "kernels": kernels, "profiled_step_us": wall / steps * 1e6, "phases_us": phases,
                       "cprofile": buf.getvalue()}, f, indent=1)


if __name__ == "__main__":
    main()
