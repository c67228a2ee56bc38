"""Training data supply: examples per second one data worker makes, by questions per image.

Run: `python bench/bench_data_supply.py [--batches 3] [--batch-size 64] [--out supply.json]` (CPU, one
thread, as a worker). Makes stage-2 batches of a curriculum mix (default run 11's) with the loader's
own `CurriculumStream.batch` at each `--questions-per-image` value, the same batch indices for each,
and prints ms per example, examples/s and the GPU steps/s that --workers such workers could feed.
Prints a table; writes JSON with --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import torch
from tokenizers import Tokenizer

from nanovl.llm import BUNDLED_MODEL
from nanovl.model.presets import preset_config
from nanovl.train.dataset import CurriculumStream, StageSchedule
from nanovl.train.recipe import PRESET
from nanovl.train.samples import parse_mix

RUN11_MIX = "text_tile=2.5,chart=3.5,multi_image=2,video=1.2,reasoning=3.5,arithmetic=0.7,document=4"
RUN11_TILES = "money=0.15,chart=0.3"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mix", default=RUN11_MIX)
    p.add_argument("--tile-shares", default=RUN11_TILES)
    p.add_argument("--questions", default="1,2", help="questions-per-image values to compare")
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--first-batch", type=int, default=20000, help="stage-2 batch index of the first batch")
    p.add_argument("--workers", type=int, default=15, help="for the steps/s column: workers feeding one GPU")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    cfg = preset_config(PRESET)
    tok = Tokenizer.from_file(str(BUNDLED_MODEL / "tokenizer.json"))
    rows = []
    for k in (int(q) for q in args.questions.split(",")):
        stream = CurriculumStream(str(BUNDLED_MODEL), seed=0, batch_size=args.batch_size, start=args.first_batch,
                                  stage_of=StageSchedule(0, 0), image_size=cfg.force_image_size,
                                  max_tiles=cfg.max_num_tiles, mean=cfg.norm_mean, std=cfg.norm_std,
                                  mix=parse_mix(args.mix, args.tile_shares, k))
        t, n, tasks = time.perf_counter(), 0, {}
        for b in range(args.first_batch, args.first_batch + args.batches):
            for e in stream.batch(b, tok):
                n += 1
                tasks[e.task] = tasks.get(e.task, 0) + 1
        seconds = time.perf_counter() - t
        per_s = n / seconds
        rows.append({"questions_per_image": k, "examples": n, "seconds": round(seconds, 2),
                     "ms_per_example": round(1000 / per_s, 1), "examples_per_s": round(per_s, 2),
                     "steps_per_s_fed": round(per_s * args.workers / args.batch_size, 2), "tasks": tasks})
    print(f"{'questions':>9s} {'examples':>8s} {'ms/example':>10s} {'examples/s':>10s} "
          f"{'steps/s fed by ' + str(args.workers):>18s}")
    for r in rows:
        print(f"{r['questions_per_image']:>9d} {r['examples']:>8d} {r['ms_per_example']:>10.1f} "
              f"{r['examples_per_s']:>10.2f} {r['steps_per_s_fed']:>18.2f}")
    result = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "date": time.strftime("%Y-%m-%d"),
              "mix": args.mix, "tile_shares": args.tile_shares, "batch_size": args.batch_size, "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
