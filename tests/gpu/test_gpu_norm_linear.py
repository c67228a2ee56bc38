"""The fused residual add + RMSNorm + projection kernel (`ops.linear.add_rms_norm_linear_triton`)
against its reference twin and against the two kernels it replaces, on the lent GPU
(`pytest -m gpu tests/gpu/test_gpu_norm_linear.py`), or on the CPU in Triton's interpreter:
`TRITON_INTERPRET=1 python tests/gpu/test_gpu_norm_linear.py` (bench/interp_check.sh runs it).
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from nanovl.ops.linear.ref import add_rms_norm_linear_ref  # noqa: E402

pytestmark = pytest.mark.gpu
# max abs error of y as a fraction of its max abs value, against an fp64 product of the reference's
# normed input (the output's own rounding: 2**-8 in bf16, 2**-11 in fp16)
TOL = {torch.float32: 1e-5, torch.bfloat16: 1e-2, torch.float16: 2e-3}


def _inputs(device, dtype, m, n, k, has_bias):
    # x and the residual are column slices of wider tensors (rows not contiguous), as after a split
    x = torch.randn(m, k + 32, device=device, dtype=dtype)[:, :k]
    residual = (torch.randn(m, k + 16, device=device, dtype=dtype) * 4)[:, :k]
    norm_w = torch.rand(k, device=device, dtype=dtype) + 0.5
    w = torch.randn(n, k, device=device, dtype=dtype) * k ** -0.5
    b = torch.randn(n, device=device, dtype=dtype) if has_bias else None
    return x, residual, norm_w, w, b


def _rel_max_err(ref: torch.Tensor, out: torch.Tensor) -> float:
    return ((out.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


def run_against_reference(device, dtype, m, n=300, k=700, has_bias=True, relu_square=False, config=None):
    """y within TOL of the fp64 product of the reference's normed input; the stream s bit-equal."""
    from nanovl.ops.linear import kernel
    from nanovl.ops.norm.ref import add_rms_norm_ref

    x, residual, norm_w, w, b = _inputs(device, dtype, m, n, k, has_bias)
    if config is None:
        y, s = kernel.add_rms_norm_linear_triton(x, residual, norm_w, 1e-5, w, b, relu_square)
    else:  # one autotune entry, launched as the wrapper would
        s = torch.full((m, k), float("nan"), device=device, dtype=dtype)
        y = torch.full((m, n), float("nan"), device=device, dtype=dtype)
        kernel._launch(x.contiguous(), w, b, y, config, relu_square, (residual.contiguous(), norm_w, s, 1e-5))
    normed, s_ref = add_rms_norm_ref(x, residual, norm_w, 1e-5)
    y64 = normed.double() @ w.double().T + (b.double() if b is not None else 0.0)
    y64 = y64.relu().square() if relu_square else y64
    assert torch.equal(s, s_ref), "the stream residual + x differs from the reference's"
    assert torch.isfinite(y).all()
    err = _rel_max_err(y64, y)
    assert err < TOL[dtype], f"m={m} {dtype} relu_square={relu_square}: max error {err:.2e} >= {TOL[dtype]:.0e}"
    y_ref, _ = add_rms_norm_linear_ref(x, residual, norm_w, 1e-5, w, b, relu_square)
    assert _rel_max_err(y_ref, y) < TOL[dtype]
    return err


def run_against_unfused_kernels(device, dtype, m, n=300, k=700):
    """The fused kernel against the norm kernel then the projection kernel: they differ only in where
    the normed input rounds (the fused kernel scales by 1 / rms after the sums), well inside the
    output's own rounding."""
    from nanovl.ops.linear.kernel import add_rms_norm_linear_triton, skinny_linear_triton
    from nanovl.ops.norm.kernel import add_rms_norm_triton

    x, residual, norm_w, w, b = _inputs(device, dtype, m, n, k, True)
    y, s = add_rms_norm_linear_triton(x, residual, norm_w, 1e-5, w, b)
    normed, s_unfused = add_rms_norm_triton(x, residual, norm_w, 1e-5)
    y_unfused = skinny_linear_triton(normed, w, b)
    assert torch.equal(s, s_unfused)
    err = _rel_max_err(y_unfused, y)
    assert err < TOL[dtype] / 2, f"m={m} {dtype}: fused vs unfused {err:.2e}"
    return err


CASES = [dict(m=1), dict(m=1, relu_square=True, has_bias=False), dict(m=3), dict(m=16, relu_square=True),
         dict(m=1, n=1000, k=5120, has_bias=False)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_fused_norm_projection_matches_reference(dtype, case):
    run_against_reference("cuda", dtype, **case)


@pytest.mark.parametrize("m", [1, 5, 16])
def test_fused_norm_projection_matches_the_unfused_kernels(m):
    run_against_unfused_kernels("cuda", torch.bfloat16, m)


@pytest.mark.parametrize("m", [1, 5])
def test_fused_norm_projection_every_config(m):
    # the autotuner may pick any entry on another shape or GPU: each must be right with the norm too
    from nanovl.ops.linear import kernel

    configs = kernel._gemv_fwd_kernel.configs if m == 1 else kernel._skinny_dot_fwd_kernel.configs
    for cfg in configs:
        run_against_reference("cuda", torch.bfloat16, m, n=1000, k=777, config=cfg)


def test_fused_norm_projection_under_a_cuda_graph():
    from nanovl.ops import kernel_failures
    from nanovl.ops.linear import add_rms_norm_linear

    x, residual, norm_w, w, _ = _inputs("cuda", torch.bfloat16, 1, 5120, 5120, False)
    x, residual = x.contiguous(), residual.contiguous()
    eager = add_rms_norm_linear(x, residual, norm_w, 1e-5, w)  # autotunes before the capture
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        y, s = add_rms_norm_linear(x, residual, norm_w, 1e-5, w)
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(y, eager[0]) and torch.equal(s, eager[1])
    x.copy_(torch.randn_like(x))
    graph.replay()
    torch.cuda.synchronize()
    fresh = add_rms_norm_linear(x, residual, norm_w, 1e-5, w)
    assert torch.equal(y, fresh[0]) and torch.equal(s, fresh[1]) and not torch.equal(y, eager[0])
    assert "add_rms_norm_linear" not in kernel_failures()


if __name__ == "__main__":  # interpreter-mode check on the CPU (fp16 stands in for bf16: numpy has none)
    from test_gpu_ops import _patch_interpreter

    _patch_interpreter()
    torch.manual_seed(0)
    for dt in (torch.float32, torch.float16):
        for case in CASES[:4]:
            print(f"reference {str(dt):14s} {case} max err {run_against_reference('cpu', dt, **case):.2e}", flush=True)
        for m in (1, 5):
            print(f"unfused   {str(dt):14s} m={m} max err {run_against_unfused_kernels('cpu', dt, m):.2e}", flush=True)
