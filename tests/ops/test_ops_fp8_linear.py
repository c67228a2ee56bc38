"""FP8 linear op: the reference's rounding and scales, and which path a call takes (the kernels
themselves are checked against the reference in tests/gpu/test_gpu_ops.py, on the GPU or in
Triton's CPU interpreter)."""
from __future__ import annotations

import types

import pytest
import torch

from nanovl.ops import dispatch
from nanovl.ops.fp8_linear import fp8_linear, fp8_linear_ref, fp8_linear_relu_square, quantize_fp8_ref


def test_quantize_rounds_to_nearest_even_and_saturates():
    one = torch.tensor(1.0)
    # e4m3 spacing is 16 in [128, 256) and 32 in [256, 448]: 200 and 216 are ties (to the even
    # mantissa), 1000 saturates, 2**-10 is under half the smallest subnormal 2**-9
    x = torch.tensor([200.0, 216.0, 201.0, 1000.0, -1000.0, 2.0 ** -10, 3 * 2.0 ** -10, 0.3])
    want = [192.0, 224.0, 208.0, 448.0, -448.0, 0.0, 2.0 ** -8, 0.3125]
    assert quantize_fp8_ref(x, one).float().tolist() == want
    assert quantize_fp8_ref(torch.tensor([3.0]), torch.tensor(0.5)).float().tolist() == [6.0]


def test_reference_is_the_scaled_product_of_e4m3_values():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 64, generator=g, dtype=torch.float64).to(torch.bfloat16)
    w = (torch.randn(40, 64, generator=g) * 50).to(torch.float8_e4m3fn)
    ws, xs, b = torch.tensor(0.01), torch.tensor(0.02), torch.randn(40, generator=g).to(torch.bfloat16)
    exact = quantize_fp8_ref(x, xs).double() @ w.double().T * (0.01 * 0.02) + b.double()
    out = fp8_linear_ref(x, w, ws, xs, b)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, exact.to(torch.bfloat16))  # fp32 holds every partial sum here exactly enough
    relu2 = fp8_linear_relu_square(x, w, ws, xs, b)
    assert torch.equal(relu2, torch.relu(out).square())


def test_per_channel_weight_and_per_token_input_scales():
    # ModelOpt's FP8_PER_CHANNEL_PER_TOKEN: a scale per output row of the weight, one per row of x
    from nanovl.ops.fp8_linear import per_token_scale

    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 64, generator=g)
    w = (torch.randn(40, 64, generator=g) * 50).to(torch.float8_e4m3fn)
    ws = torch.rand(40, generator=g) * 0.01 + 1e-3
    xs = per_token_scale(x)
    assert xs.shape == (2, 3, 1) and torch.equal(xs[..., 0], x.abs().amax(-1) / 448)
    xq = (x.double() / xs.double()).clamp(-448, 448).float().to(torch.float8_e4m3fn)  # each row's own scale
    exact = (xq.double() @ w.double().T) * xs.double() * ws.double()
    out = fp8_linear(x, w, ws, xs)
    assert ((out.double() - exact).abs().max() / exact.abs().max()).item() < 1e-6
    assert (quantize_fp8_ref(x, xs).float().abs().amax(-1) == 448).all()  # each row's largest maps to 448


def test_bad_inputs_are_refused():
    x = torch.randn(2, 8)
    with pytest.raises(ValueError, match="float8_e4m3fn"):
        fp8_linear(x, torch.randn(4, 8), torch.tensor(1.0), torch.tensor(1.0))
    w = torch.randn(4, 8).to(torch.float8_e4m3fn)
    with pytest.raises(ValueError, match="weight_scale must hold one value or one per output"):
        fp8_linear(x, w, torch.ones(3), torch.tensor(1.0))
    with pytest.raises(ValueError, match="input_scale must hold one value or one per row"):
        fp8_linear(x, w, torch.tensor(1.0), torch.ones(3, 1))


@pytest.fixture
def fake_kernels(monkeypatch):
    """Calls that reach run_op take fake launchers that record (launcher, rows)."""
    calls = []

    def fake(name):
        def launcher(x, weight, weight_scale, input_scale, bias=None):
            calls.append((name, x.shape[:-1].numel()))
            return fp8_linear_ref(x, weight, weight_scale, input_scale, bias)
        return launcher

    names = ["skinny_fp8_linear_triton", "skinny_fp8_linear_relu_square_triton", "scaled_mm_fp8_linear",
             "scaled_mm_fp8_linear_relu_square"]
    mod = types.SimpleNamespace(**{n: fake(n) for n in names})
    monkeypatch.setattr(dispatch, "use_kernel", lambda op, *t: True)
    monkeypatch.setattr(dispatch, "kernel_module", lambda package: mod)
    monkeypatch.setattr(dispatch, "_on_cpu", lambda tensors: False)
    monkeypatch.setattr(dispatch, "_failed", {})
    return calls


def test_paths_by_rows_and_shape(fake_kernels):
    one = torch.tensor(1.0)
    w = torch.randn(32, 48).to(torch.float8_e4m3fn)
    for rows in (1, 16, 17, 64):
        fp8_linear(torch.randn(rows, 48, dtype=torch.bfloat16), w, one, one)
    fp8_linear_relu_square(torch.randn(2, 48), w, one, one)
    bf16 = torch.randn(40, 40, dtype=torch.bfloat16)
    fp8_linear(bf16, torch.randn(32, 40).to(torch.float8_e4m3fn), one, one)  # K % 16 != 0: reference
    fp8_linear(torch.randn(40, 48), w, one, one)  # fp32 activations over 16 rows: reference
    fp8_linear(torch.randn(2, 48, dtype=torch.bfloat16), w, torch.ones(32), one)  # per-channel: reference
    fp8_linear(torch.randn(2, 48, dtype=torch.bfloat16), w, one, torch.ones(2, 1))  # per-token: reference
    assert fake_kernels == [("skinny_fp8_linear_triton", 1), ("skinny_fp8_linear_triton", 16),
                            ("scaled_mm_fp8_linear", 17), ("scaled_mm_fp8_linear", 64),
                            ("skinny_fp8_linear_relu_square_triton", 2)]


def test_cpu_tensors_take_the_reference():
    one = torch.tensor(1.0)
    x, w = torch.randn(5, 16), torch.randn(8, 16).to(torch.float8_e4m3fn)
    assert torch.equal(fp8_linear(x, w, one, one), fp8_linear_ref(x, w, one, one))


# ---- on the GPU (`pytest -m gpu tests/ops/test_ops_fp8_linear.py`): the real 12B projection shapes
gpu = pytest.mark.gpu


def _real_shapes():
    from nanovl.bench.roofline import lm_linear_shapes
    from nanovl.model.presets import preset_text_config

    return [s for s in lm_linear_shapes(preset_text_config("nano-12b-v2-vl")) if s[0] != "lm_head"]


def _gpu_inputs(m, n, k):
    g = torch.Generator(device="cuda").manual_seed(m * 7 + n)
    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16, generator=g)
    w = (torch.randn(n, k, device="cuda", generator=g) * 100).to(torch.float8_e4m3fn)
    return x, w, torch.tensor(3e-5, device="cuda"), torch.tensor(0.02, device="cuda")


def _rel_l2(ref, out):
    assert torch.isfinite(out.float()).all()
    return ((out.double() - ref.double()).norm() / ref.double().norm()).item()


@gpu
@pytest.mark.parametrize("m", [1, 16, 300])
@pytest.mark.parametrize("name,n,k", _real_shapes())
def test_fp8_linear_real_shapes(name, n, k, m):
    from nanovl.ops import kernel_failures

    x, w, ws, xs = _gpu_inputs(m, n, k)
    ref = fp8_linear_ref(x, w, ws, xs)
    out = fp8_linear(x, w, ws, xs)  # the dispatcher: the skinny kernel up to 16 rows, _scaled_mm above
    assert _rel_l2(ref, out) < 5e-3, f"{name} m={m}"
    assert not kernel_failures(), kernel_failures()


@gpu
@pytest.mark.parametrize("m", [1, 5])
def test_fp8_skinny_every_config(m):
    # the autotuner may pick any entry on another shape: each must be right with an e4m3 weight
    from nanovl.ops.linear import kernel

    x, w, ws, xs = _gpu_inputs(m, 1000, 784)
    ref = fp8_linear_ref(x, w, ws, xs)
    configs = kernel._gemv_fwd_kernel.configs if m == 1 else kernel._skinny_dot_fwd_kernel.configs
    for cfg in configs:
        out = torch.full((m, 1000), float("nan"), device="cuda", dtype=x.dtype)
        kernel._launch(x, w, None, out, cfg, scales=(ws.reshape(1), xs.reshape(1)))
        assert _rel_l2(ref, out) < 5e-3, f"m={m} {cfg}"
