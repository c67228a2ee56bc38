"""`nanovl bench`: prefill / decode / time-to-first-token of nanovl beside the device's roofline and
transformers' NemotronHForCausalLM, with random weights. On a GPU it runs the real Nano-12B-v2-VL
shape in bf16; on a CPU the tiny preset, so the same command works everywhere.

Run: `python -m nanovl.cli_bench [--out bench.json] [--skip-hf]` (the CLI wires it as `nanovl bench`).
"""
from __future__ import annotations

import argparse
import datetime
import gc
import json
import math
import platform

import torch

from nanovl.bench import hf as hf_bench
from nanovl.bench import lm as our_bench
from nanovl.bench import roofline as rl

GPU_SIZES = {"prefill": (2048, 8192, 32768), "decode": (1, 16, 64), "prompt": 256, "steps": 64,
             "tiles": 13, "frames": 128, "reps": 3}
CPU_SIZES = {"prefill": (32, 128, 512), "decode": (1, 16, 64), "prompt": 16, "steps": 8,
             "tiles": 13, "frames": 128, "reps": 2}


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nanovl bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default=None, help="model shape (default: nano-12b-v2-vl on GPU, tiny on CPU)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--out", default=None, help="write all results as JSON here")
    p.add_argument("--skip-hf", action="store_true", help="skip the transformers baseline")
    p.add_argument("--hf-max-seconds", type=float, default=60.0,
                   help="skip a transformers prefill predicted (from the shorter ones) to take longer")
    p.add_argument("--sections", default="prefill,decode,image,video",
                   help="comma list of prefill,decode,image,video")
    return p.parse_args(argv)


def _progress(kind: str, r: dict) -> None:
    # one line per finished measurement, so a run cut short still shows what it measured
    print(f"[bench] {kind}: " + json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()}),
          flush=True)


def _gib(b: int | None) -> str:
    return "-" if b is None else f"{b / 2 ** 30:.1f}"


def _ours(args, dev, dtype, sizes, caps, res) -> None:
    model = our_bench.build_model(args.preset, dev, dtype)
    cfg = model.config
    secs = set(args.sections.split(","))
    if "prefill" in secs:
        for t in sizes["prefill"]:
            r = our_bench.bench_prefill(model, t, reps=max(1, sizes["reps"] - (t >= 16384)))
            r["flops"] = rl.lm_prefill_flops(cfg.text, t)
            r["mfu"] = r["flops"] / r["seconds"] / caps["matmul_flop_per_s"]
            r["roofline_tok_per_s"] = t * caps["matmul_flop_per_s"] / r["flops"]
            res["prefill"].append(r)
            _progress("prefill", r)
    if "decode" in secs:
        runs = [(b, dev.type == "cuda") for b in sizes["decode"]]
        if dev.type == "cuda":
            runs.append((1, False))  # eager, to show what the graphs buy
        for b, graphs in runs:
            steps = sizes["steps"] if graphs or dev.type == "cpu" else 8
            r = our_bench.bench_decode(model, b, sizes["prompt"], steps, graphs=graphs)
            r["bytes"] = rl.lm_decode_bytes(cfg.text, b, r["context"])
            r["roofline_tok_per_s"] = b * caps["copy_bytes_per_s"] / r["bytes"]
            res["decode"].append(r)
            _progress("decode", r)
    n_tok = cfg.num_image_token
    if "image" in secs:
        r = our_bench.bench_image_ttft(model, sizes["tiles"], reps=sizes["reps"])
        r["roofline_seconds"] = (rl.vision_flops(cfg, sizes["tiles"]) + rl.lm_prefill_flops(
            cfg.text, r["prompt_tokens"])) / caps["matmul_flop_per_s"]
        res["ttft"].append({"name": f"image {sizes['tiles']} tiles", **r})
        _progress("ttft", r)
    if "video" in secs:
        for q in (0.0, 0.75):
            r = our_bench.bench_video_ttft(model, sizes["frames"], q, reps=max(1, sizes["reps"] - 1))
            r["roofline_seconds"] = (rl.vision_flops(cfg, sizes["frames"]) + rl.lm_prefill_flops(
                cfg.text, r["prompt_tokens"])) / caps["matmul_flop_per_s"]
            res["ttft"].append({"name": f"video {sizes['frames']}f x {n_tok} q={q}", **r})
            _progress("ttft", r)
    del model
    gc.collect()


def _hf(args, dev, dtype, sizes, res) -> None:
    try:
        model = hf_bench.build_hf(args.preset, dev, dtype)
    except Exception as e:  # transformers missing or too old: say so in the table
        res["hf_error"] = f"{type(e).__name__}: {e}"[:200]
        return
    secs = set(args.sections.split(","))
    last = None
    if "prefill" in secs:
        for t in sizes["prefill"]:
            if last and "seconds" in last and last["seconds"] * (t / last["tokens"]) ** 1.2 > args.hf_max_seconds:
                res["hf_prefill"].append({"tokens": t, "error": f"skipped: predicted > {args.hf_max_seconds:.0f} s"})
                continue
            last = hf_bench.hf_prefill(model, t, reps=1 if t >= 8192 else 2)
            res["hf_prefill"].append(last)
            _progress("hf_prefill", last)
    if "decode" in secs:
        for b in sizes["decode"]:
            res["hf_decode"].append(hf_bench.hf_decode(model, b, sizes["prompt"], 9 if dev.type == "cpu" else 17))
            _progress("hf_decode", res["hf_decode"][-1])
    del model
    gc.collect()


def _table(res: dict) -> list[str]:
    caps = res["device_caps"]
    hf_pre = {r["tokens"]: r for r in res["hf_prefill"]}
    hf_dec = {r["batch"]: r for r in res["hf_decode"]}
    hf_txt = lambda r, k: ("-" if r is None else (f"{r[k]:.1f}" if k in r else r.get("error", "-")[:24]))  # noqa: E731
    rows = [f"device: {res['device']} | copy {caps['copy_bytes_per_s'] / 1e12:.2f} TB/s | "
            f"matmul {caps['matmul_flop_per_s'] / 1e12:.1f} TFLOP/s ({res['dtype']}) | {res['date']}",
            f"{'metric':34s} {'nanovl':>10s} {'roofline':>10s} {'of roof':>8s} {'transformers':>13s} {'peak GiB':>8s}"]
    for r in res["prefill"]:
        rows.append(f"{'prefill ' + str(r['tokens']) + ' tok (tok/s)':34s} {r['tok_per_s']:10.0f} "
                    f"{r['roofline_tok_per_s']:10.0f} {100 * r['mfu']:7.1f}% {hf_txt(hf_pre.get(r['tokens']), 'tok_per_s'):>13s} "
                    f"{_gib(r['peak_bytes']):>8s}")
    for r in res["decode"]:
        name = f"decode b{r['batch']}{'' if r['cuda_graphs'] else ' eager'} (tok/s)"
        hf = hf_dec.get(r["batch"]) if r["cuda_graphs"] or res["device"] == "cpu" else None
        rows.append(f"{name:34s} {r['tok_per_s']:10.1f} {r['roofline_tok_per_s']:10.1f} "
                    f"{100 * r['tok_per_s'] / r['roofline_tok_per_s']:7.1f}% {hf_txt(hf, 'tok_per_s'):>13s} "
                    f"{_gib(r['peak_bytes']):>8s}")
    for r in res["ttft"]:
        rows.append(f"{'TTFT ' + r['name'] + ' (s)':34s} {r['seconds']:10.3f} {r['roofline_seconds']:10.3f} "
                    f"{100 * r['roofline_seconds'] / r['seconds']:7.1f}% {'-':>13s} {_gib(r['peak_bytes']):>8s}")
        rows[-1] += f"  [{r['prompt_tokens']} tok]"
    video = {r["evs_q"]: r["seconds"] for r in res["ttft"] if "evs_q" in r}
    if 0.0 in video and 0.75 in video:
        rows.append(f"EVS q=0.75 TTFT speed-up over q=0: {video[0.0] / video[0.75]:.2f}x")
    if res.get("hf_error"):
        rows.append(f"transformers baseline not run: {res['hf_error']}")
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print a table last; write JSON when --out is given."""
    args = _args(argv)
    dev = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    args.preset = args.preset or ("nano-12b-v2-vl" if dev.type == "cuda" else "tiny")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    sizes = GPU_SIZES if args.preset != "tiny" else CPU_SIZES
    torch.manual_seed(0)
    caps = rl.measure_device(dev, dtype)
    res = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
           "host": platform.node(), "torch": torch.__version__, "preset": args.preset, "dtype": str(dtype),
           "date": datetime.date.today().isoformat(), "device_caps": caps,
           "prefill": [], "decode": [], "ttft": [], "hf_prefill": [], "hf_decode": []}
    _ours(args, dev, dtype, sizes, caps, res)
    if not args.skip_hf:
        if dev.type == "cuda":
            torch.cuda.empty_cache()
        _hf(args, dev, dtype, sizes, res)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(res, f, indent=1, default=lambda o: None if isinstance(o, float) and math.isnan(o) else str(o))
    print("\n".join(_table(res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
