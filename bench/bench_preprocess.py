"""Image preprocessing (dynamic tiling): `image_to_tiles` against its plain twin.

Run: `python bench/bench_preprocess.py [--threads 1] [--out preprocess.json]` (CPU). Times a scanned
page (1700x2200, 12 tiles of 512 px + thumbnail), a photo (1024x768) and the tiny model's page
(512x512 into 128 px tiles), median of --repeats, and checks the two outputs are equal bit for bit.
Prints a table; writes JSON with --out.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import torch
from PIL import Image

from nanovl.inputs.image import image_to_tiles, image_to_tiles_ref

CASES = (("scanned page", (1700, 2200), 512), ("photo", (1024, 768), 512), ("tiny-model page", (512, 512), 128))


def _median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: first-call allocations are not what a server pays per request
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (a training worker uses 1)")
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--max-tiles", type=int, default=12)
    p.add_argument("--out", default=None, help="write the results as JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    rows = []
    for name, (w, h), size in CASES:
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        kw = {"image_size": size, "max_tiles": args.max_tiles}
        fast = _median_ms(lambda: image_to_tiles(image, **kw), args.repeats)
        plain = _median_ms(lambda: image_to_tiles_ref(image, **kw), args.repeats)
        tiles = image_to_tiles(image, **kw)
        same = torch.equal(tiles, image_to_tiles_ref(image, **kw))
        rows.append({"case": name, "size": [w, h], "tile": size, "tiles": int(tiles.shape[0]),
                     "ms": round(fast, 1), "reference_ms": round(plain, 1), "speedup": round(plain / fast, 2),
                     "bit_equal": same})
    print(f"{'case':16s} {'size':>10s} {'tiles':>5s} {'ms':>8s} {'plain ms':>9s} {'speedup':>8s} {'equal':>6s}")
    for r in rows:
        print(f"{r['case']:16s} {r['size'][0]:>4d}x{r['size'][1]:<5d} {r['tiles']:>5d} {r['ms']:>8.1f} "
              f"{r['reference_ms']:>9.1f} {r['speedup']:>7.2f}x {str(r['bit_equal']):>6s}")
    result = {"machine": platform.machine(), "processor": platform.processor() or platform.machine(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "threads": args.threads,
              "date": time.strftime("%Y-%m-%d"), "rows": rows}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    return 0 if all(r["bit_equal"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
