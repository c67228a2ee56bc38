"""`nanovl bench`: prefill / decode / time-to-first-token of nanovl beside the device's roofline and
transformers' NemotronHForCausalLM, with random weights. On a GPU it runs the real Nano-12B-v2-VL
shape in bf16; on a CPU the tiny preset, so the same command works everywhere.

Run: `python -m nanovl.cli_bench [--out bench.json] [--table-out bench.txt] [--sections ...]`.
Every measurement is guarded and saved as it finishes; rerunning with the same --out resumes
(see nanovl/bench/suite.py). bench/device_run.sh drives it on the lent GPU.
"""
from __future__ import annotations

import argparse
import datetime
import functools
import gc
import json
import math
import os
import platform
import sys
import time

import torch

from nanovl.bench import hf as hf_bench
from nanovl.bench import lm as our_bench
from nanovl.bench import roofline as rl
from nanovl.bench.suite import Item, Results, run_items
from nanovl.bench.targets import target_rows
from nanovl.devices import check_device
from nanovl.ops.dispatch import _forced_ref, triton_available

GPU_SIZES = {"prefill": (2048, 8192, 32768), "decode": (1, 16, 64), "prompt": 256, "steps": 64, "eager_steps": 8,
             "tiles": 13, "frames": 128, "reps": 3, "hf_prefill": (2048, 8192, 32768), "hf_decode": (1, 16, 64),
             "hf_prompt": 64, "hf_new_tokens": 9}
CPU_SIZES = {"prefill": (32, 128, 512), "decode": (1, 16, 64), "prompt": 16, "steps": 8, "eager_steps": 16,
             "tiles": 13, "frames": 128, "reps": 2, "hf_prefill": (32, 128, 512), "hf_decode": (1, 16, 64),
             "hf_prompt": 16, "hf_new_tokens": 5}
SECTIONS = "prefill,decode,image,video,hf"


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="nanovl bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default=None, help="model shape (default: nano-12b-v2-vl on GPU, tiny on CPU)")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when available)")
    p.add_argument("--out", default=None, help="results JSON: resumed when it exists, rewritten after each step")
    p.add_argument("--table-out", default=None, help="also write the printed table here")
    p.add_argument("--skip-hf", action="store_true", help="skip the transformers baseline")
    p.add_argument("--sections", default=SECTIONS, help=f"comma list of {SECTIONS}")
    p.add_argument("--time-budget", type=float, default=math.inf,
                   help="seconds from now after which remaining measurements are skipped (and recorded so)")
    p.add_argument("--table-only", action="store_true", help="print the table of --out and exit")
    p.add_argument("--quant", choices=["none", "fp8"], default="none",
                   help="fp8: the LM's projections (all but lm_head) in e4m3 with static input scales, as an "
                        "FP8 checkpoint loads; rooflines take their bytes and the e4m3 GEMM rate")
    return p.parse_args(argv)


def _progress(key: str, r: dict) -> None:
    # one line per finished measurement, so a run cut short still shows what it measured
    short = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items() if k != "key"}
    print(f"[bench] {key}: {short}", flush=True)


def _ops_report(dev: torch.device) -> dict:
    rep = {"forced_reference": _forced_ref(), "triton": dev.type == "cuda" and triton_available(), "fla": False,
           # the kernel switches a figure depends on (nanovl/ops/linear, nanovl/ops/pdl.py)
           "skinny_gemm": os.environ.get("NANOVL_SKINNY_GEMM", "1") != "0",
           "pdl": os.environ.get("NANOVL_PDL", "auto"), "pdl_capable": False,
           # on a CPU: the torch twins of the prompt scan and attention (nanovl/ops/*/cpu.py)
           "cpu_twins": dev.type == "cpu" and not _forced_ref()}
    if rep["triton"]:
        from nanovl.ops import pdl
        from nanovl.ops.ssd import fla_adapter

        rep["fla"] = fla_adapter.available()
        rep["pdl_capable"] = pdl.device_can(torch.empty(0, device=dev))
    return rep


def _our_items(args, dev, dtype, sizes, caps, res: Results) -> list[Item]:
    @functools.cache
    def model():
        t0 = time.time()
        m = our_bench.build_model(args.preset, dev, dtype, quant=fp8 and "fp8" or None)
        res.data["build_s"] = time.time() - t0
        res.data["weights_bytes"] = sum(p.numel() * p.element_size() for p in m.parameters())
        return m

    ops = "reference" if _forced_ref() or not triton_available() or dev.type != "cuda" else "kernels"
    fp8 = args.quant == "fp8"
    body_bytes = 1 if fp8 else None  # bytes per weight of the quantized projections

    def prefill(t):
        cfg = model().config
        r = our_bench.bench_prefill(model(), t, reps=max(1, sizes["reps"] - (t >= 16384)))
        r["flops"] = rl.lm_prefill_flops(cfg.text, t)
        roof = rl.lm_prefill_roofline_seconds(cfg.text, t, caps, fp8)
        # the share of the roofline; for bf16 that is the MFU (with FP8, two matmul rates mix in it)
        r["mfu"] = roof / r["seconds"]
        r["roofline_tok_per_s"] = t / roof
        return {**r, "ops": ops}

    def decode(b, graphs):
        r = our_bench.bench_decode(model(), b, sizes["prompt"], sizes["steps"] if graphs else sizes["eager_steps"],
                                   graphs=graphs)
        r["bytes"] = rl.lm_decode_bytes(model().config.text, b, r["context"], body_bytes=body_bytes)
        r["roofline_tok_per_s"] = b * caps["copy_bytes_per_s"] / r["bytes"]
        return {**r, "ops": ops}

    def engine_decode(graphs, lookahead=True, sampled=False, batch=1):
        steps = sizes["steps"] if graphs else sizes["eager_steps"]
        r = our_bench.bench_engine_decode(model(), sizes["prompt"], steps, graphs=graphs, lookahead=lookahead,
                                          sampled=sampled, batch=batch)
        r["bytes"] = rl.lm_decode_bytes(model().config.text, batch, r["context"], body_bytes=body_bytes)
        r["roofline_tok_per_s"] = batch * caps["copy_bytes_per_s"] / r["bytes"]
        return {**r, "ops": ops}

    def ttft(name, fn, n_items):
        r = fn()
        cfg = model().config
        r["roofline_seconds"] = (rl.vision_flops(cfg, n_items) / caps["matmul_flop_per_s"]
                                 + rl.lm_prefill_roofline_seconds(cfg.text, r["prompt_tokens"], caps, fp8))
        return {"name": name, **r, "ops": ops}

    cuda = dev.type == "cuda"
    pre = [Item("prefill", f"prefill:{t}", functools.partial(prefill, t), tags={"tokens": t})
           for t in sizes["prefill"]]
    dec = [Item("decode", f"decode:{b}:{'graphs' if cuda else 'eager'}", functools.partial(decode, b, cuda),
                fallback=functools.partial(decode, b, False) if cuda else None,
                tags={"batch": b, "cuda_graphs": cuda}) for b in sizes["decode"]]
    img = [Item("ttft", f"image:{sizes['tiles']}", functools.partial(
        ttft, f"image {sizes['tiles']} tiles",
        lambda: our_bench.bench_image_ttft(model(), sizes["tiles"], reps=sizes["reps"]), sizes["tiles"]),
        tags={"name": f"image {sizes['tiles']} tiles"})]
    vid = [Item("ttft", f"video:{sizes['frames']}:{q}", functools.partial(
        ttft, f"video {sizes['frames']}f q={q}",
        functools.partial(lambda q: our_bench.bench_video_ttft(model(), sizes["frames"], q,
                                                               reps=max(1, sizes["reps"] - 1)), q), sizes["frames"]),
        tags={"name": f"video {sizes['frames']}f q={q}", "evs_q": q}) for q in (0.75, 0.0)]
    secs = set(args.sections.split(","))
    # cheap and most-wanted first, so a run cut short loses the least
    items = [i for i in pre[:2] if "prefill" in secs] + (dec if "decode" in secs else []) \
        + (img if "image" in secs else []) + (vid if "video" in secs else []) \
        + [i for i in pre[2:] if "prefill" in secs]
    if cuda and "decode" in secs:  # eager, to show what the graphs buy
        items.append(Item("decode", "decode:1:eager", functools.partial(decode, 1, False),
                          tags={"batch": 1, "cuda_graphs": False}))
    if "decode" in secs:  # what `nanovl run` gets: the whole engine, graphs with and without the
        # decode lookahead, and eager; then a top-p draw instead of greedy; then what `nanovl serve`
        # gets from many requests at once, beside the bare batched replays above
        runs = (((1, True, True, False), (1, True, False, False), (1, False, False, False), (1, True, True, True))
                + tuple((b, True, True, s) for b in sizes["decode"] if b > 1 for s in (False, True))
                if cuda else ((1, False, False, False),))
        for batch, graphs, lookahead, sampled in runs:
            key = (f"decode:{batch}:engine{'-graphs' if graphs else ''}"
                   f"{'-no-lookahead' if graphs and not lookahead else ''}{'-top-p' if sampled else ''}")
            items.append(Item("decode", key, functools.partial(engine_decode, graphs, lookahead, sampled, batch),
                              tags={"batch": batch, "cuda_graphs": graphs, "engine": True, "lookahead": lookahead,
                                    "sampled": sampled}))
    return items


def _hf_items(args, dev, dtype, sizes) -> list[Item]:
    built: dict = {}

    def model():
        # build once; a failed build (transformers missing, out of memory) fails every item fast
        if "model" not in built:
            try:
                built["model"] = hf_bench.build_hf(args.preset, dev, dtype)
            except Exception as e:
                built["model"] = e
        if isinstance(built["model"], Exception):
            raise built["model"]
        return built["model"]

    # one timed run of a long prompt (its torch path takes seconds); past the first size the
    # warm-up is left out, the smaller prompt before it having warmed the same kernels
    first = min(sizes["hf_prefill"])
    items = [Item("hf_prefill", f"hf_prefill:{t}", functools.partial(
        lambda t: hf_bench.hf_prefill(model(), t, reps=1 if t >= 2048 else 2, warmup=int(t == first)), t),
        tags={"tokens": t}, retry_with_reference=False) for t in sizes["hf_prefill"]]
    items += [Item("hf_decode", f"hf_decode:{b}", functools.partial(
        lambda b: hf_bench.hf_decode(model(), b, sizes["hf_prompt"], sizes["hf_new_tokens"]), b), tags={"batch": b},
        retry_with_reference=False) for b in sizes["hf_decode"]]
    return items


def _txt(r: dict | None, k: str, fmt: str, width: int, err: bool = False) -> str:
    """r[k] formatted, else (in the main columns, err=True) the start of the record's error."""
    if r is not None and r.get(k) is not None:
        return f"{r[k]:{width}{fmt}}"
    text = _short_error(r.get("error")) if err and r is not None else "-"
    return f"{text[:width]:>{width}s}"


def _short_error(e: str | None) -> str:
    if not e:
        return "-"
    for key, label in (("out of memory", "OOM"), ("out of time", "no time"), ("died", "died")):
        if key in e:
            return label
    return "error"


def _ratio(r: dict, num: str, den: str, width: int = 7) -> str:
    if r.get(num) is None or not r.get(den):
        return f"{'-':>{width + 1}s}"
    return f"{100 * r[num] / r[den]:{width}.1f}%"


def _gib(r: dict | None) -> str:
    b = None if r is None else r.get("peak_bytes")
    return f"{'-':>8s}" if b is None else f"{b / 2 ** 30:8.1f}"


def _ref_mark(d: dict, r: dict) -> str:
    # on a GPU, rows measured on the reference ops (forced, or after a kernel error) are marked
    return " [ref]" if d["device"] != "cpu" and str(r.get("ops", "")).startswith("reference") else ""


def _unpaired_hf_rows(d: dict, hf_pre: dict, hf_dec: dict) -> list[str]:
    """transformers' figures with no nanovl row beside them (`--sections hf` alone, or a size whose
    nanovl run failed to start), so the table never hides one."""
    ours_pre = {r.get("tokens") for r in d["prefill"]}
    ours_dec = {r.get("batch") for r in d["decode"]
                if (r.get("cuda_graphs") or d["device"] == "cpu") and not r.get("engine")}
    named = [(f"prefill {t} tok (tok/s)", r) for t, r in sorted(hf_pre.items()) if t not in ours_pre]
    named += [(f"decode b{b} (tok/s)", r) for b, r in sorted(hf_dec.items()) if b not in ours_dec]
    return [f"{name:34s} {'-':>10s} {'-':>10s} {'-':>8s} {_txt(r, 'tok_per_s', '.1f', 13, True)} {'-':>8s}"
            for name, r in named]


def _table(d: dict) -> list[str]:
    caps = d.get("device_caps") or {}
    hf_pre = {r["tokens"]: r for r in d["hf_prefill"] if "tokens" in r}
    hf_dec = {r["batch"]: r for r in d["hf_decode"] if "batch" in r}
    fp8 = (f" | e4m3 GEMM {caps['fp8_matmul_flop_per_s'] / 1e12:.1f} TFLOP/s | LM projections in FP8"
           if d.get("quant") == "fp8" and "fp8_matmul_flop_per_s" in caps else
           " | LM projections in FP8" if d.get("quant") == "fp8" else "")
    rows = [f"device: {d['device']} | copy {caps.get('copy_bytes_per_s', 0) / 1e12:.2f} TB/s | matmul "
            f"{caps.get('matmul_flop_per_s', 0) / 1e12:.1f} TFLOP/s ({d['dtype']}){fp8} | {d['preset']} | {d['date']}",
            f"ops: {d.get('ops')} | kernel failures: {d.get('kernel_failures') or 'none'}",
            f"{'metric':34s} {'nanovl':>10s} {'roofline':>10s} {'of roof':>8s} {'transformers':>13s} {'peak GiB':>8s}"]
    for r in sorted(d["prefill"], key=lambda r: r.get("tokens", 0)):
        r = {**r, "mfu_pct": None if r.get("mfu") is None else f"{100 * r['mfu']:.1f}%"}
        rows.append(f"{'prefill ' + str(r.get('tokens')) + ' tok (tok/s)' + _ref_mark(d, r):34s} "
                    f"{_txt(r, 'tok_per_s', '.0f', 10, True)} {_txt(r, 'roofline_tok_per_s', '.0f', 10)} "
                    f"{r['mfu_pct'] or '-':>8s} {_txt(hf_pre.get(r.get('tokens')), 'tok_per_s', '.1f', 13, True)} "
                    f"{_gib(r)}")
    for r in sorted(d["decode"], key=lambda r: (bool(r.get("engine")), not r.get("cuda_graphs"), r.get("batch", 0))):
        no_ahead = r.get("engine") and r.get("cuda_graphs") and r.get("lookahead") is False
        name = (f"decode b{r.get('batch')}{' engine' if r.get('engine') else ''}"
                f"{'' if r.get('cuda_graphs') else ' eager'}{' no lookahead' if no_ahead else ''}"
                f"{' top-p' if r.get('sampled') else ''} (tok/s)"
                + _ref_mark(d, r))
        hf = hf_dec.get(r.get("batch")) if (r.get("cuda_graphs") or d["device"] == "cpu") and not r.get("engine") \
            else None
        rows.append(f"{name:34s} {_txt(r, 'tok_per_s', '.1f', 10, True)} "
                    f"{_txt(r, 'roofline_tok_per_s', '.1f', 10)} {_ratio(r, 'tok_per_s', 'roofline_tok_per_s')} "
                    f"{_txt(hf, 'tok_per_s', '.1f', 13, True)} {_gib(r)}")
    rows += _unpaired_hf_rows(d, hf_pre, hf_dec)
    for r in d["ttft"]:
        name = "TTFT " + r.get("name", r["key"]) + " (s)" + _ref_mark(d, r)
        rows.append(f"{name:34s} {_txt(r, 'seconds', '.3f', 10, True)} {_txt(r, 'roofline_seconds', '.3f', 10)} "
                    f"{_ratio(r, 'roofline_seconds', 'seconds')} {'-':>13s} {_gib(r)}"
                    + (f"  [{r['prompt_tokens']} tok]" if "prompt_tokens" in r else ""))
    video = {r["evs_q"]: r.get("seconds") for r in d["ttft"] if "evs_q" in r}
    if video.get(0.0) and video.get(0.75):
        rows.append(f"EVS q=0.75 TTFT speed-up over q=0: {video[0.0] / video[0.75]:.2f}x")
    rows += target_rows(d)
    rows += [f"note: {n}" for n in d.get("notes", [])]
    rows += [f"error: {r['key']}: {r['error']}" for name in ("prefill", "decode", "ttft", "hf_prefill", "hf_decode")
             for r in d[name] if r.get("error")]
    rows += [f"first error (then retried): {r['key']}: {r['first_error']}"
             for name in ("prefill", "decode", "ttft") for r in d[name] if r.get("first_error")]
    if d.get("hf_error"):
        rows.append(f"transformers baseline not run: {d['hf_error']}")
    return rows


def _emit(res: Results, table_out: str | None) -> None:
    text = "\n".join(_table(res.data))
    print(text, flush=True)
    if table_out:
        with open(table_out, "w") as f:
            f.write(text + "\n")


def _check_args(args: argparse.Namespace) -> str | None:
    """What is wrong with the arguments, in one line, or None: checked before anything is measured."""
    from nanovl.model.presets import PRESETS

    unknown = sorted(set(args.sections.split(",")) - set(SECTIONS.split(",")))
    if unknown:
        return f"--sections: unknown {unknown}; choose from {SECTIONS}"
    if args.preset is not None and args.preset not in PRESETS:
        return f"--preset {args.preset!r} is not one of {sorted(PRESETS)}"
    if args.table_only and not (args.out and os.path.isfile(args.out)):
        return "--table-only prints the table of an existing --out results file"
    if args.out and os.path.exists(args.out):
        try:
            with open(args.out) as f:
                earlier = json.load(f)
                if not isinstance(earlier, dict):
                    raise ValueError("not an object")
        except (OSError, ValueError) as err:  # JSONDecodeError is a ValueError
            return f"--out {args.out}: not a results file of nanovl bench ({err})"
        if not args.table_only and earlier.get("quant", "none") != args.quant:
            return (f"--out {args.out} holds a --quant {earlier.get('quant', 'none')} run; resuming it with "
                    f"--quant {args.quant} would mix the two")
    try:
        check_device(args.device or "auto")
    except ValueError as err:
        return f"--device: {err}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; print a table last; keep JSON (and the table) when --out is given."""
    args = _args(argv)
    problem = _check_args(args)
    if problem:
        print(f"nanovl bench: error: {problem}", file=sys.stderr)
        return 2
    dev = check_device(args.device or "auto")
    args.preset = args.preset or ("nano-12b-v2-vl" if dev.type == "cuda" else "tiny")
    if args.skip_hf:
        args.sections = ",".join(s for s in args.sections.split(",") if s != "hf")
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    # a CPU gets the small sizes whatever the preset (a 32k prompt would take hours there)
    sizes = CPU_SIZES if dev.type == "cpu" or args.preset == "tiny" else GPU_SIZES
    res = Results(args.out, {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
                             "host": platform.node(), "torch": torch.__version__, "preset": args.preset,
                             "dtype": str(dtype), "quant": args.quant,
                             "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="minutes")})
    if args.table_only:
        _emit(res, args.table_out)
        return 0
    deadline = time.time() + args.time_budget
    torch.manual_seed(0)
    if not res.data.get("device_caps"):
        res.data["device_caps"] = rl.measure_device(dev, dtype, fp8=args.quant == "fp8")
    ops = _ops_report(dev)
    if res.data.setdefault("ops", ops) != ops:
        res.data["notes"].append(f"a later pass ran with ops {ops}")
    res.save()
    caps = res.data["device_caps"]
    items = _our_items(args, dev, dtype, sizes, caps, res)
    if "hf" in args.sections.split(","):
        items += _hf_items(args, dev, dtype, sizes)
    try:
        run_items(items, res, deadline=deadline, progress=_progress)
    finally:
        gc.collect()
        _emit(res, args.table_out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
