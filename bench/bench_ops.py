"""Per-op GPU timings at the real Nano-12B-v2 dims: reference vs kernel, beside the memory floor.

Run on the GPU: `python bench/bench_ops.py [--out ops.json]` (prints a table last).
"""
from __future__ import annotations

import argparse
import json

import torch
from triton.testing import do_bench

from nanovl.ops.attention.kernel import decode_attention_triton, prefill_attention_triton
from nanovl.ops.attention.ref import decode_attention_ref
from nanovl.ops.conv1d.kernel import causal_conv1d_triton, causal_conv1d_update_triton
from nanovl.ops.conv1d.ref import causal_conv1d_ref, causal_conv1d_update_ref
from nanovl.ops.norm.kernel import gated_rms_norm_triton
from nanovl.ops.norm.ref import gated_rms_norm_ref
from nanovl.ops.ssd.fla_adapter import ssd_chunk_scan_fla
from nanovl.ops.ssd.kernel import ssd_chunk_scan_triton, ssd_state_update_triton
from nanovl.ops.ssd.ref import ssd_chunk_scan_ref, ssd_state_update_ref

H, P, G, N, K, D_INNER, CONV, HQ, HKV, DH = 128, 80, 8, 128, 4, 10240, 12288, 40, 8, 128
BF = torch.bfloat16


def _ms(fn) -> float:
    return do_bench(fn, warmup=5, rep=40, return_mode="median")


def cases(bw: float):
    dev = "cuda"
    r = lambda *s, dt=BF: torch.randn(*s, device=dev, dtype=dt)  # noqa: E731
    for t in (8192,):
        xbc = r(1, t, CONV).transpose(1, 2)
        w, b, st = r(CONV, K), r(CONV), r(1, CONV, K - 1)
        yield (f"conv prefill T={t}", lambda: causal_conv1d_ref(xbc, w, b, st.clone()),
               lambda: causal_conv1d_triton(xbc, w, b, st.clone()), 2 * xbc.numel() * 2 / bw)
        x, dt = r(1, t, H, P), r(1, t, H)
        Bm, Cm = r(1, t, G, N) * N ** -0.5, r(1, t, G, N) * N ** -0.5
        A, Dv, dtb, s0 = -torch.rand(H, device=dev) - 0.1, r(H, dt=torch.float32), r(H, dt=torch.float32), r(1, H, P, N, dt=torch.float32)
        args = (x, dt, A, Bm, Cm, 128, Dv, dtb, s0)
        floor = (2 * x.numel() + 2 * Bm.numel()) * 2 / bw
        yield (f"ssd chunk scan T={t}", lambda: ssd_chunk_scan_ref(*args), lambda: ssd_chunk_scan_triton(*args), floor)
        yield (f"ssd chunk scan T={t} torch prep", None,
               lambda: ssd_chunk_scan_fla(x, dt, A, Bm, Cm, Dv, dtb, s0), floor)
        y, z, nw = r(1, t, D_INNER), r(1, t, D_INNER), r(D_INNER)
        yield (f"gated rmsnorm T={t}", lambda: gated_rms_norm_ref(y, z, nw, G, 1e-5),
               lambda: gated_rms_norm_triton(y, z, nw, G, 1e-5), 3 * y.numel() * 2 / bw)
        q, kc, vc = r(1, t, HQ, DH), r(1, HKV, t, DH), r(1, HKV, t, DH)
        sp = torch.zeros(1, dtype=torch.long, device=dev)
        yield (f"prefill attention T={t}", None, lambda: prefill_attention_triton(q, kc, vc, sp, DH ** -0.5), 0.0)
    for bsz, ctx in ((1, 512), (64, 512), (1, 32768)):
        x, st, w, b = r(bsz, CONV), r(bsz, CONV, K - 1), r(CONV, K), r(CONV)
        if ctx == 512:
            yield (f"conv update b={bsz}", lambda: causal_conv1d_update_ref(x, st, w, b),
                   lambda: causal_conv1d_update_triton(x, st, w, b), 2 * st.numel() * 2 / bw)
            s = r(bsz, H, P, N, dt=torch.float32)
            xs, dts, Bs, Cs = r(bsz, H, P), r(bsz, H), r(bsz, G, N), r(bsz, G, N)
            A, Dv = -torch.rand(H, device=dev) - 0.1, r(H, dt=torch.float32)
            yield (f"ssm state update b={bsz}", lambda: ssd_state_update_ref(s, xs, dts, A, Bs, Cs, Dv, Dv),
                   lambda: ssd_state_update_triton(s, xs, dts, A, Bs, Cs, Dv, Dv), 2 * s.numel() * 4 / bw)
        q, kc, vc = r(bsz, HQ, DH), r(bsz, HKV, ctx + 64, DH), r(bsz, HKV, ctx + 64, DH)
        lens = torch.full((bsz,), ctx, device=dev)
        yield (f"decode attention b={bsz} ctx={ctx}", lambda: decode_attention_ref(q, kc, vc, lens, DH ** -0.5),
               lambda: decode_attention_triton(q, kc, vc, lens, DH ** -0.5), 2 * bsz * HKV * ctx * DH * 2 / bw)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    src = torch.empty(1 << 29, device="cuda")
    dst = torch.empty_like(src)
    bw = 2 * src.numel() * 4 / (_ms(lambda: dst.copy_(src)) * 1e-3)
    del src, dst
    rows = []
    for name, ref, ker, floor in cases(bw):
        ref_ms = _ms(ref) if ref is not None else float("nan")
        rows.append({"op": name, "ref_ms": ref_ms, "kernel_ms": _ms(ker), "floor_ms": floor * 1e3})
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"copy_bytes_per_s": bw, "ops": rows}, f, indent=1)
    print(f"copy bandwidth {bw / 1e12:.2f} TB/s")
    print(f"{'op':34s} {'ref ms':>9s} {'kernel ms':>10s} {'floor ms':>9s}")
    for r in rows:
        print(f"{r['op']:34s} {r['ref_ms']:9.3f} {r['kernel_ms']:10.3f} {r['floor_ms']:9.3f}")


if __name__ == "__main__":
    main()
