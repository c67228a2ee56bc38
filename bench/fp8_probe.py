"""What the FP8 kernels give against their reference on a GPU, one line per case, errors included:
a quick look before the FP8 GPU tests (`python bench/fp8_probe.py`; needs CUDA and Triton).

Cases: the quantize kernel on 65k random values; every autotune config of the skinny GEMM at 1 and 5
rows; the dispatcher at 1 / 16 / 300 rows on the attention k / v shape (1024 x 5120) in bf16."""
import torch

from nanovl.ops import kernel_failures
from nanovl.ops.fp8_linear import fp8_linear, fp8_linear_ref, quantize_fp8_ref
from nanovl.ops.fp8_linear import kernel as fk
from nanovl.ops.linear import kernel


def _rel(ref, out) -> str:
    if not torch.isfinite(out.float()).all():
        return "non-finite output"
    return f"rel L2 {((out.double() - ref.double()).norm() / ref.double().norm()).item():.2e}"


def main() -> None:
    torch.manual_seed(0)
    dev = "cuda"
    x = torch.randn(1 << 16, device=dev) * 30
    s = torch.tensor(0.37, device=dev)
    q, r = fk.quantize_fp8_triton(x, s).float(), quantize_fp8_ref(x, s).float()
    bad = (q != r).nonzero().flatten()
    print("quantize: mismatches", len(bad), [(x[i].item() / 0.37, q[i].item(), r[i].item()) for i in bad[:5]])
    ws, xs = torch.tensor(3e-5, device=dev), torch.tensor(0.02, device=dev)
    w = (torch.randn(1000, 784, device=dev) * 100).to(torch.float8_e4m3fn)
    for m in (1, 5):
        xm = torch.randn(m, 784, device=dev, dtype=torch.bfloat16)
        ref = fp8_linear_ref(xm, w, ws, xs)
        configs = kernel._gemv_fwd_kernel.configs if m == 1 else kernel._skinny_dot_fwd_kernel.configs
        for cfg in configs:
            out = torch.full((m, 1000), float("nan"), device=dev, dtype=xm.dtype)
            try:
                kernel._launch(xm, w, None, out, cfg, scales=(ws.reshape(1), xs.reshape(1)))
                print(f"skinny m={m} {cfg.kwargs} warps {cfg.num_warps}: {_rel(ref, out)}")
            except Exception as e:  # report every case
                print(f"skinny m={m} {cfg.kwargs}: {type(e).__name__}: {str(e)[:200]}")
    wkv = (torch.randn(1024, 5120, device=dev) * 100).to(torch.float8_e4m3fn)
    for m in (1, 16, 300):
        xm = torch.randn(m, 5120, device=dev, dtype=torch.bfloat16)
        print(f"k/v m={m}: {_rel(fp8_linear_ref(xm, wkv, ws, xs), fp8_linear(xm, wkv, ws, xs))}")
    print("kernel failures:", kernel_failures() or "none")


if __name__ == "__main__":
    main()
