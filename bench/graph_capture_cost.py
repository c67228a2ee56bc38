"""What the decode CUDA graphs cost before the first token: capture time and memory per bucket set.

The engine's runner captures every batch-size bucket up to `max_num_seqs` on its first decode, and
again when a row outgrows the K/V reserved for the graphs. This times that capture for growing
buckets: each one alone, cold (its kernels compile and autotune first: what a fresh `nanovl run`
pays) and again (the capture alone: what a recapture pays), then the sets captured at once, with
the GPU memory the graphs' pool holds.

    python bench/graph_capture_cost.py [--max-bucket 64] [--capacity 4096] [--out capture.json]

On a GPU the model is the random nano-12b-v2-vl in bf16 (as the bench); on a CPU the tiny preset,
with the capture run eagerly (nanovl/testing/fake_graphs.py), which checks the script, not the cost.
"""
from __future__ import annotations

import argparse
import json
import time

import torch

from nanovl.bench import lm as our_bench
from nanovl.engine import cuda_graphs


def _graphs_class(dev: torch.device):
    if dev.type == "cuda":
        return cuda_graphs.DecodeCudaGraphs
    from nanovl.testing.fake_graphs import FakeGraphs

    return FakeGraphs


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def _reserved(dev: torch.device) -> int:
    return torch.cuda.memory_reserved(dev) if dev.type == "cuda" else 0


def _capture_seconds(graphs_cls, lm, state, capacity: int, buckets: tuple[int, ...], dev) -> tuple[float, int]:
    """(seconds, bytes the capture added to the allocator's reserve); the graphs are freed after.
    The K/V the graphs reserve is grown first and left out of both: it is the state's, not the graphs'."""
    graphs = graphs_cls(lm, state, max_seq_len=capacity, buckets=buckets)
    _sync(dev)
    before = _reserved(dev)
    t1 = time.perf_counter()
    graphs.capture(preserve_state=True)
    _sync(dev)
    sec = time.perf_counter() - t1
    grown = _reserved(dev) - before
    del graphs
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return sec, grown


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--max-bucket", type=int, default=64)
    p.add_argument("--capacity", type=int, default=4096, help="K/V tokens reserved per row for the graphs")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    preset = "nano-12b-v2-vl" if dev.type == "cuda" else "tiny"
    model = our_bench.build_model(preset, dev, torch.bfloat16 if dev.type == "cuda" else torch.float32)
    lm = model.language_model
    buckets = [b for b in cuda_graphs.DEFAULT_BUCKETS if b <= args.max_bucket]
    state = lm.new_state(buckets[-1])
    graphs_cls = _graphs_class(dev)
    # each bucket alone, ascending: the first capture of a batch size also compiles and autotunes
    # its kernels (what a fresh process pays), the second is the capture alone
    alone = []
    for b in buckets:
        cold, _ = _capture_seconds(graphs_cls, lm, state, args.capacity, (b,), dev)
        again, pool = _capture_seconds(graphs_cls, lm, state, args.capacity, (b,), dev)
        alone.append({"bucket": b, "cold_s": cold, "again_s": again, "pool_bytes": pool})
    # the sets the runner captures at once for max_num_seqs = 1, 2, 4, ... (kernels compiled by now)
    sets = []
    for n in range(1, len(buckets) + 1):
        sec, pool = _capture_seconds(graphs_cls, lm, state, args.capacity, tuple(buckets[:n]), dev)
        sets.append({"buckets": buckets[:n], "again_s": sec, "pool_bytes": pool})
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu", "preset": preset,
           "capacity": args.capacity, "date": time.strftime("%Y-%m-%d"), "alone": alone, "sets": sets}
    print(f"{res['device']} | {preset} | K/V capacity {args.capacity} tokens a row")
    print(f"{'one bucket':12s} {'cold (s)':>9s} {'again (s)':>10s} {'pool MiB':>9s}")
    for r in alone:
        print(f"b{r['bucket']:<11d} {r['cold_s']:9.3f} {r['again_s']:10.3f} {r['pool_bytes'] / 2 ** 20:9.0f}")
    print(f"{'buckets at once':28s} {'again (s)':>10s} {'pool MiB':>9s}")
    for r in sets:
        print(f"{','.join(map(str, r['buckets'])):28s} {r['again_s']:10.3f} {r['pool_bytes'] / 2 ** 20:9.0f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1)
    return res


if __name__ == "__main__":
    main()
