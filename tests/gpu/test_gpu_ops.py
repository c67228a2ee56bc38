"""GPU kernels vs their reference twins on the same random inputs (run on the lent GPU:
`pytest tests/gpu -m gpu`). Each check is a plain function of `device`, so the Triton kernels can
also be checked on the CPU in interpreter mode: `TRITON_INTERPRET=1 python tests/gpu/test_gpu_ops.py`.
"""
from __future__ import annotations

import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nanovl.ops.activation.ref import relu_square_ref  # noqa: E402
from nanovl.ops.attention.ref import decode_attention_ref, prefill_attention_ref  # noqa: E402
from nanovl.ops.conv1d.ref import causal_conv1d_ref, causal_conv1d_update_ref  # noqa: E402
from nanovl.ops.fp8_linear.ref import fp8_linear_ref, fp8_linear_relu_square_ref, quantize_fp8_ref  # noqa: E402
from nanovl.ops.norm.ref import add_rms_norm_ref, gated_rms_norm_ref, rms_norm_ref  # noqa: E402
from nanovl.ops.ssd.ref import ssd_chunk_scan_ref, ssd_state_update_ref  # noqa: E402

pytestmark = pytest.mark.gpu
DTYPES = [torch.float32, torch.bfloat16]
# relative L2 error bounds: fp32 inputs (tf32 dots inside fla / attention), bf16 inputs
TOL = {torch.float32: 3e-3, torch.bfloat16: 1e-2, torch.float16: 5e-3}


def rel_err(ref: torch.Tensor, out: torch.Tensor) -> float:
    ref, out = ref.double(), out.double()
    return ((out - ref).norm() / ref.norm().clamp_min(1e-30)).item()


def check(name: str, ref: torch.Tensor, out: torch.Tensor, tol: float) -> float:
    assert ref.shape == out.shape, f"{name}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.isfinite(out.float()).all(), f"{name}: non-finite output"
    err = rel_err(ref, out)
    assert err < tol, f"{name}: relative L2 error {err:.3e} >= {tol:.1e}"
    return err


def _poisoned(t: torch.Tensor) -> torch.Tensor:
    return t.clone().fill_(float("nan")) if t.is_floating_point() else t.clone()


def run_conv(device, dtype, b=2, c=300, t=37, k=4):
    from nanovl.ops.conv1d.kernel import causal_conv1d_triton, causal_conv1d_update_triton

    x = torch.randn(b, t, c, device=device, dtype=dtype).transpose(1, 2)  # channel-contiguous, as in the model
    w, bias = torch.randn(c, k, device=device, dtype=dtype), torch.randn(c, device=device, dtype=dtype)
    st = torch.randn(b, c, k - 1, device=device, dtype=dtype)
    st_ref, st_k = st.clone(), st.clone()
    errs = [check("conv", causal_conv1d_ref(x, w, bias, st_ref), causal_conv1d_triton(x, w, bias, st_k), TOL[dtype]),
            check("conv_state", st_ref, st_k, 1e-6)]
    short = x[:, :, :2]  # shorter than the history
    errs.append(check("conv_short", causal_conv1d_ref(short, w, None, st_ref, None),
                      causal_conv1d_triton(short, w, None, st_k, None), TOL[dtype]))
    check("conv_short_state", st_ref, st_k, 1e-6)
    xs = torch.randn(b, c, device=device, dtype=dtype)
    errs.append(check("conv_update", causal_conv1d_update_ref(xs, st_ref, w, bias),
                      causal_conv1d_update_triton(xs, st_k, w, bias), TOL[dtype]))
    check("conv_update_state", st_ref, st_k, 1e-6)
    return max(errs)


def run_norm(device, dtype, rows=5, d=96, groups=4):
    from nanovl.ops.norm.kernel import add_rms_norm_triton, gated_rms_norm_triton, rms_norm_triton

    x, z = torch.randn(rows, 2, d, device=device, dtype=dtype), torch.randn(rows, 2, d, device=device, dtype=dtype)
    w = torch.randn(d, device=device, dtype=dtype)
    e1 = check("rms_norm", rms_norm_ref(x, w, 1e-5), rms_norm_triton(x, w, 1e-5), TOL[dtype])
    wide = torch.randn(rows, 3 * d, device=device, dtype=dtype)  # z as a strided column slice
    e2 = check("gated_rms_norm", gated_rms_norm_ref(wide[:, :d], wide[:, d:2 * d], w, groups, 1e-5),
               gated_rms_norm_triton(wide[:, :d], wide[:, d:2 * d], w, groups, 1e-5), TOL[dtype])
    res = torch.randn(rows, 2, d, device=device, dtype=dtype) * 3
    (n_ref, s_ref), (n_k, s_k) = add_rms_norm_ref(x, res, w, 1e-5), add_rms_norm_triton(x, res, w, 1e-5)
    # the sum is one rounded add either way: bit-equal; the norm of it as tight as rms_norm's
    assert torch.equal(s_ref, s_k), "add_rms_norm: the residual sum differs"
    e3 = check("add_rms_norm", n_ref, n_k, TOL[dtype])
    return max(e1, e2, e3)


def run_relu_square(device, dtype, n=10_007):
    from nanovl.ops.activation.kernel import relu_square_triton

    x = torch.randn(3, n, device=device, dtype=dtype)[:, 1:]  # strided rows: the launcher makes them contiguous
    out = relu_square_triton(x)
    assert torch.equal(out, relu_square_ref(x)), "relu_square: differs from relu then square"
    return 0.0


def _ssd_inputs(device, dtype, b, t, h, p, g, n):
    r = lambda *s: torch.randn(*s, device=device)  # noqa: E731
    return dict(x=r(b, t, h, p).to(dtype), dt=r(b, t, h).to(dtype), A=-torch.rand(h, device=device) * 2 - 0.1,
                B=r(b, t, g, n).to(dtype), C=r(b, t, g, n).to(dtype), D=r(h), dt_bias=r(h) * 0.5)


def run_state_update(device, dtype, b=3, h=8, p=10, g=2, n=16, limit=(0.0, math.inf)):
    from nanovl.ops.ssd.kernel import ssd_state_update_triton

    inp = _ssd_inputs(device, dtype, b, 1, h, p, g, n)
    args = (inp["x"][:, 0], inp["dt"][:, 0], inp["A"], inp["B"][:, 0], inp["C"][:, 0], inp["D"], inp["dt_bias"], limit)
    st = torch.randn(b, h, p, n, device=device)
    st_ref, st_k = st.clone(), st.clone()
    e = check("state_update", ssd_state_update_ref(st_ref, *args), ssd_state_update_triton(st_k, *args), TOL[dtype])
    check("state_update_state", st_ref, st_k, 1e-5)
    return e


def run_chunk_scan(device, dtype, b=2, t=300, h=8, p=80, g=2, n=128, with_state=True):
    from nanovl.ops.ssd.kernel import ssd_chunk_scan_triton

    inp = _ssd_inputs(device, dtype, b, t, h, p, g, n)
    inp["B"], inp["C"] = inp["B"] * n ** -0.5, inp["C"] * n ** -0.5  # keep outputs O(1)
    init = torch.randn(b, h, p, n, device=device) if with_state else None
    args = (inp["x"], inp["dt"], inp["A"], inp["B"], inp["C"], 128, inp["D"], inp["dt_bias"], init)
    y_ref, s_ref = ssd_chunk_scan_ref(*args)
    y, s = ssd_chunk_scan_triton(*args)
    return max(check("chunk_scan_y", y_ref, y, TOL[dtype]), check("chunk_scan_state", s_ref, s, TOL[dtype]))


def run_kv_write(device, dtype, b=3, hkv=2, cap=40, dh=64):
    from nanovl.ops.attention.kernel import kv_cache_write_triton
    from nanovl.ops.attention.ref import kv_cache_write_ref

    # a decode step (one row past the capacity: it lands in the last slot) and a prefill chunk
    for t, start in ((1, [0, 17, 45]), (7, [0, 3, 30])):
        cache = [torch.randn(b, hkv, cap, dh, device=device, dtype=dtype) for _ in range(2)]
        ref, ker = [c.clone() for c in cache], [c.clone() for c in cache]
        # fp32 new keys laid out as the model makes them ([B, T, Hkv, Dh] transposed)
        k_new = torch.randn(b, t, hkv, dh, device=device).transpose(1, 2)
        v_new = torch.randn(b, t, hkv, dh, device=device).transpose(1, 2)
        sp = torch.tensor(start, device=device)
        kv_cache_write_ref(*ref, k_new, v_new, sp)
        kv_cache_write_triton(*ker, k_new, v_new, sp)
        # a copy with one cast: bit-equal
        assert torch.equal(ref[0], ker[0]) and torch.equal(ref[1], ker[1]), f"kv_cache_write differs (T={t})"
    return 0.0


def run_attention(device, dtype, b=3, hq=8, hkv=2, dh=64, cap=300, t=20):
    from nanovl.ops.attention.kernel import decode_attention_triton, prefill_attention_triton

    k = torch.randn(b, hkv, cap, dh, device=device, dtype=dtype)
    v = torch.randn(b, hkv, cap, dh, device=device, dtype=dtype)
    q = torch.randn(b, t, hq, dh, device=device, dtype=dtype)
    errs = []
    for start in ([0, 0, 0], [5, 5, 5], [0, 7, 100]):
        sp = torch.tensor(start[:b], device=device)
        errs.append(check(f"prefill{start}", prefill_attention_ref(q, k, v, sp, dh ** -0.5),
                          prefill_attention_triton(q, k, v, sp, dh ** -0.5), TOL[dtype]))
    lens = torch.tensor([1, 77, cap][:b], device=device)
    errs.append(check("decode", decode_attention_ref(q[:, 0], k, v, lens, dh ** -0.5),
                      decode_attention_triton(q[:, 0], k, v, lens, dh ** -0.5), TOL[dtype]))
    return max(errs)


def run_fp8_quantize(device, dtype):
    """Every finite value of the dtype (all of bf16 / fp16; 2**20 random fp32) at four scales: the
    kernel's e4m3 rounding must give the reference's values."""
    from nanovl.ops.fp8_linear.kernel import quantize_fp8_triton

    if dtype == torch.float32:
        x = torch.randn(1 << 20, device=device) * torch.logspace(-6, 6, 1 << 20, device=device)
    else:
        x = torch.arange(-32768, 32768, dtype=torch.int32).to(torch.int16).view(dtype).to(device)
        x = x[torch.isfinite(x)]
    for scale in (1.0, 0.37, 3.1e-3, 250.0):
        s = torch.tensor(scale, device=device)
        ref, out = quantize_fp8_ref(x, s), quantize_fp8_triton(x, s)
        bad = int((ref.float() != out.float()).sum())  # by value: a zero's sign multiplies to the same
        assert bad == 0, f"quantize_fp8 {dtype} scale {scale}: {bad} values differ from the reference"
    return 0.0


def run_fp8_linear(device, dtype, n=304, k=784):  # _scaled_mm wants multiples of 16
    """The FP8 projection at 1 / 5 / 16 rows (skinny kernel) and 40 rows (quantize + _scaled_mm),
    with and without bias and squared ReLU, against the reference."""
    from nanovl.ops.fp8_linear import kernel as fk

    w = (torch.randn(n, k, device=device) * 60).to(torch.float8_e4m3fn)
    ws, xs = torch.tensor(0.004, device=device), torch.tensor(0.03, device=device)
    errs = []
    # 40 rows only below fp32: fp32 activations keep the reference past 16 rows (ops/fp8_linear)
    for m in (1, 5, 16, 40) if dtype != torch.float32 else (1, 5, 16):
        x = torch.randn(m, k, device=device, dtype=dtype)
        for bias in (None, torch.randn(n, device=device, dtype=dtype)):
            for relu in (False, True):
                ref_fn = fp8_linear_relu_square_ref if relu else fp8_linear_ref
                if m <= 16:
                    fn = fk.skinny_fp8_linear_relu_square_triton if relu else fk.skinny_fp8_linear_triton
                else:
                    fn = fk.scaled_mm_fp8_linear_relu_square if relu else fk.scaled_mm_fp8_linear
                name = f"fp8_linear m={m} bias={bias is not None} relu={relu}"
                errs.append(check(name, ref_fn(x, w, ws, xs, bias), fn(x, w, ws, xs, bias), TOL[dtype]))
    return max(errs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
def test_fp8_quantize(dtype):
    run_fp8_quantize("cuda", dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_fp8_linear(dtype):
    run_fp8_linear("cuda", dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_causal_conv1d(dtype):
    run_conv("cuda", dtype)
    run_conv("cuda", dtype, b=1, c=12288, t=1000)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_rms_norms(dtype):
    run_norm("cuda", dtype)
    run_norm("cuda", dtype, rows=7, d=10240, groups=8)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_relu_square(dtype):
    run_relu_square("cuda", dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_state_update(dtype):
    run_state_update("cuda", dtype)
    run_state_update("cuda", dtype, b=4, h=128, p=80, g=8, n=128, limit=(0.01, 0.5))


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
@pytest.mark.parametrize("with_state", [False, True], ids=["zero-state", "initial-state"])
def test_chunk_scan(dtype, with_state):
    pytest.importorskip("fla")
    run_chunk_scan("cuda", dtype, with_state=with_state)
    run_chunk_scan("cuda", dtype, b=2, t=1, h=4, p=16, g=1, n=16, with_state=with_state)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_kv_cache_write(dtype):
    run_kv_write("cuda", dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=["fp32", "bf16"])
def test_attention(dtype):
    run_attention("cuda", dtype)
    run_attention("cuda", dtype, b=2, hq=40, hkv=8, dh=128, cap=2000, t=64)


def _patch_interpreter() -> None:
    """Make the Triton CPU interpreter run our kernels and fla's: loaded scalars as loop bounds,
    and autotuning without a driver (every config ties, the first one runs)."""
    from triton.runtime import autotuner, interpreter

    orig = interpreter._patch_lang_tensor

    def patched(tensor, scope):
        orig(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0]))

    interpreter._patch_lang_tensor = patched
    autotuner.Autotuner._bench = lambda self, *args, config=None, **kwargs: [0.0, 0.0, 0.0]


def _interpreter_main() -> None:
    # the interpreter multiplies bf16 dots wrongly (numpy has no bf16), so fp16 stands in for it;
    # fla's kernels call `.to` on Python-int loop indices, which only compiled Triton accepts:
    # bench/interp_check.sh runs this against a patched copy of the wheels
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    if dev == "cpu":
        _patch_interpreter()
    dtypes = DTYPES if dev == "cuda" else [torch.float32, torch.float16]
    torch.manual_seed(0)
    scan = dict(b=2, t=70, h=4, p=80, g=2, n=32)  # the interpreter is slow: a small scan
    cases = [(run_conv, {}), (run_norm, {}), (run_relu_square, {}), (run_state_update, {}), (run_kv_write, {}),
             (run_attention, {}), (run_fp8_quantize, {}), (run_fp8_linear, {}),
             (run_chunk_scan, scan), (run_chunk_scan, dict(scan, with_state=False))]
    for fn, kw in cases:
        for dt in dtypes:
            print(f"{fn.__name__:18s} {str(dt):15s} {kw} rel err {fn(dev, dt, **kw):.2e}", flush=True)

if __name__ == "__main__":  # interpreter-mode check of the Triton kernels on the CPU
    _interpreter_main()
