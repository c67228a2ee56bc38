"""Linear op: on the CPU it is F.linear, and only 1..16 rows of one float dtype may take the kernel; on the
GPU (`pytest tests/ops/test_ops_linear.py -m gpu`) the Triton skinny GEMM vs an fp64 matmul of the same inputs.
"""
from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F

from nanovl.bench.roofline import lm_linear_shapes
from nanovl.model.presets import preset_text_config
from nanovl.ops import dispatch, kernel_failures
from nanovl.ops.activation import relu_square_ref
from nanovl.ops.linear import linear, linear_relu_square

gpu = pytest.mark.gpu
# max abs error as a fraction of the output's max abs value (bf16 output rounding alone is 2**-8)
TOL = {torch.bfloat16: 1e-2, torch.float16: 2e-3, torch.float32: 1e-4}
# (name, N, K) of the Nano-12B-v2 decode GEMMs, weight [N, K]
REAL_SHAPES = lm_linear_shapes(preset_text_config("nano-12b-v2-vl"))


@pytest.mark.parametrize("shape", [(5,), (1, 5), (3, 2, 5), (40, 5)], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("has_bias", [False, True])
def test_linear_cpu_is_f_linear(shape, dtype, has_bias):
    x, w = torch.randn(*shape, dtype=dtype), torch.randn(7, 5, dtype=dtype)
    b = torch.randn(7, dtype=dtype) if has_bias else None
    out = linear(x, w, b)
    assert out.shape == (*shape[:-1], 7) and torch.equal(out, F.linear(x, w, b))


@pytest.fixture
def fake_kernel(monkeypatch):
    """Every call that reaches run_op takes a fake kernel that records its row count."""
    rows = []

    def skinny_linear_triton(x, weight, bias=None):
        rows.append(x.shape[:-1].numel())
        return F.linear(x, weight, bias)

    mod = types.SimpleNamespace(skinny_linear_triton=skinny_linear_triton)
    monkeypatch.setattr(dispatch, "use_kernel", lambda op, *t: True)
    monkeypatch.setattr(dispatch, "kernel_module", lambda package: mod)
    monkeypatch.setattr(dispatch, "_on_cpu", lambda tensors: False)  # as if the tensors could take kernels
    monkeypatch.setattr(dispatch, "_failed", {})
    return rows


def test_linear_kernel_only_for_few_rows(fake_kernel):
    w = torch.randn(7, 5)
    for shape in [(5,), (1, 1, 5), (16, 5), (4, 4, 5), (17, 5), (2, 9, 5), (64, 5), (0, 5)]:
        linear(torch.randn(*shape), w)
    assert fake_kernel == [1, 1, 16, 16]


def test_linear_kernel_only_for_float_inputs_of_one_dtype(fake_kernel):
    w = torch.randn(7, 5)
    linear(torch.randn(2, 5, dtype=torch.float16), w.half(), torch.randn(7).half())
    linear(torch.randn(2, 5, dtype=torch.float64), w.double())
    linear(torch.randn(2, 5), torch.randn(5, 7).T)  # transposed weight
    # mixed dtypes raise the reference's error, not a kernel's
    with pytest.raises(RuntimeError):
        linear(torch.randn(2, 5, dtype=torch.bfloat16), w)
    with pytest.raises(RuntimeError):
        linear(torch.randn(2, 5), w, torch.randn(7).double())
    assert fake_kernel == [2]


@pytest.mark.parametrize("rows", [1, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_linear_relu_square_is_the_two_ops(rows, dtype):
    # the MLP's up projection and its activation: equal to the unfused pair on every path
    x, w, b = torch.randn(rows, 5, dtype=dtype), torch.randn(7, 5, dtype=dtype), torch.randn(7, dtype=dtype)
    out = linear_relu_square(x, w, b)
    assert torch.equal(out, relu_square_ref(F.linear(x, w, b)))
    assert (out >= 0).all() and (out == 0).any()  # the relu clipped something: the test sees it


def test_linear_relu_square_kernel_only_for_few_rows(monkeypatch):
    rows = []

    def skinny_linear_relu_square_triton(x, weight, bias=None):
        rows.append(x.shape[:-1].numel())
        return relu_square_ref(F.linear(x, weight, bias))

    mod = types.SimpleNamespace(skinny_linear_relu_square_triton=skinny_linear_relu_square_triton)
    monkeypatch.setattr(dispatch, "use_kernel", lambda op, *t: True)
    monkeypatch.setattr(dispatch, "kernel_module", lambda package: mod if package.endswith("linear") else None)
    monkeypatch.setattr(dispatch, "_on_cpu", lambda tensors: False)  # as if the tensors could take kernels
    monkeypatch.setattr(dispatch, "_failed", {})
    w = torch.randn(7, 5)
    linear_relu_square(torch.randn(1, 5), w)
    with dispatch.use_reference_ops():  # past 16 rows the activation is its own op (here forced to its reference)
        linear_relu_square(torch.randn(17, 5), w)
    assert rows == [1]


def test_linear_env_switch_keeps_cublas(fake_kernel, monkeypatch):
    monkeypatch.setenv("NANOVL_SKINNY_GEMM", "0")
    linear(torch.randn(1, 5), torch.randn(7, 5))
    assert fake_kernel == []


def _ref64(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    y = x.double() @ w.double().T
    return y + b.double() if b is not None else y


def _check(name: str, ref: torch.Tensor, out: torch.Tensor, tol: float) -> None:
    assert out.shape == ref.shape, f"{name}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert torch.isfinite(out).all(), f"{name}: non-finite output"
    err = ((out.double() - ref).abs().max() / ref.abs().max()).item()
    assert err < tol, f"{name}: max error {err:.2e} of the output scale, tolerance {tol:.0e}"


def _inputs(m, n, k, dtype, has_bias):
    # x is a column slice of a wider tensor, as after a split: its rows are not contiguous
    x = torch.randn(1, m, k + 64, device="cuda", dtype=dtype)[..., :k]
    w = torch.randn(n, k, device="cuda", dtype=dtype) * k ** -0.5
    return x, w, torch.randn(n, device="cuda", dtype=dtype) if has_bias else None


@gpu
@pytest.mark.parametrize("m", [1, 3, 16])
@pytest.mark.parametrize("dtype,has_bias", [(torch.bfloat16, True), (torch.float32, False)], ids=["bf16_bias", "fp32"])
def test_skinny_linear_kernel(m, dtype, has_bias):
    from nanovl.ops.linear.kernel import skinny_linear_triton

    x, w, b = _inputs(m, 1000, 777, dtype, has_bias)  # N, K multiples of no block size
    out = skinny_linear_triton(x, w, b)
    assert out.dtype == dtype
    _check(f"skinny_linear m={m}", _ref64(x, w, b), out, TOL[dtype])


@gpu
@pytest.mark.parametrize("m", [1, 5, 16])
def test_skinny_linear_relu_square_is_the_kernel_then_the_square(m):
    # the epilogue squares what the plain kernel would store: bit-equal to the unfused pair
    from nanovl.ops.linear.kernel import skinny_linear_relu_square_triton, skinny_linear_triton

    x, w, b = _inputs(m, 1000, 777, torch.bfloat16, True)
    fused = skinny_linear_relu_square_triton(x, w, b)
    assert (fused == 0).any() and (fused > 0).any()
    assert torch.equal(fused, relu_square_ref(skinny_linear_triton(x, w, b)))
    _check(f"linear_relu_square m={m}", _ref64(x, w, b).relu().square(), fused, 2e-2)
    assert "linear_relu_square" not in kernel_failures()


@gpu
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
@pytest.mark.parametrize("m", [1, 5])
def test_skinny_linear_every_config(m, dtype):
    # the autotuner may pick any entry on another shape or GPU: each must be right, and each must
    # launch with fp32 inputs too (the tables promise their shared memory fits them)
    from nanovl.ops.linear import kernel

    x, w, b = _inputs(m, 1000, 777, dtype, True)
    x2, ref = x.reshape(m, 777), _ref64(x, w, b).reshape(m, 1000)
    configs = kernel._gemv_fwd_kernel.configs if m == 1 else kernel._skinny_dot_fwd_kernel.configs
    for cfg in configs:
        out = torch.full((m, 1000), float("nan"), device="cuda", dtype=x.dtype)
        kernel._launch(x2, w, b, out, cfg)
        _check(f"skinny_linear m={m} {cfg}", ref, out, TOL[x.dtype])


@gpu
@pytest.mark.parametrize("m", [1, 16])
@pytest.mark.parametrize("name,n,k", REAL_SHAPES, ids=[s[0] for s in REAL_SHAPES])
def test_skinny_linear_real_shapes(name, n, k, m):
    from nanovl.ops.linear.kernel import skinny_linear_triton

    x = torch.randn(m, k, device="cuda", dtype=torch.bfloat16)
    w = torch.randn(n, k, device="cuda", dtype=torch.bfloat16) * k ** -0.5
    _check(f"{name} m={m}", _ref64(x, w, None), skinny_linear_triton(x, w), TOL[torch.bfloat16])


@gpu
def test_linear_dispatch_and_cuda_graph():
    from nanovl.ops.linear.kernel import skinny_linear_triton

    w = torch.randn(5120, 5120, device="cuda", dtype=torch.bfloat16) * 5120 ** -0.5
    many = torch.randn(17, 5120, device="cuda", dtype=torch.bfloat16)
    assert torch.equal(linear(many, w), F.linear(many, w))  # past 16 rows: cuBLAS
    for m in (1, 2, 16):
        x = torch.randn(1, m, 5120, device="cuda", dtype=torch.bfloat16)
        assert torch.equal(linear(x, w), skinny_linear_triton(x, w))  # also autotunes before the capture
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            y = linear(x, w)
        x.copy_(torch.randn_like(x))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.equal(y, linear(x, w)), f"m={m}: graph replay != eager"
    assert "linear" not in kernel_failures()
