"""Probe of the FP8 kernels on a GPU, printing what differs from the reference (a debugging aid:
`python bench/fp8_probe.py`)."""
import torch

from nanovl.ops.fp8_linear import fp8_linear_ref, quantize_fp8_ref
from nanovl.ops.fp8_linear import kernel as fk

torch.manual_seed(0)
x = torch.randn(1 << 16, device="cuda") * 30
s = torch.tensor(0.37, device="cuda")
q, r = fk.quantize_fp8_triton(x, s).float(), quantize_fp8_ref(x, s).float()
bad = (q != r).nonzero().flatten()
print("quantize mismatches", len(bad), [(x[i].item() / 0.37, q[i].item(), r[i].item()) for i in bad[:5]])
for m, dt in ((1, torch.bfloat16), (5, torch.bfloat16), (1, torch.float32), (5, torch.float32), (40, torch.float32)):
    xx = torch.randn(m, 784, device="cuda", dtype=dt)
    w = (torch.randn(304, 784, device="cuda") * 60).to(torch.float8_e4m3fn)
    ws, xs = torch.tensor(0.004, device="cuda"), torch.tensor(0.03, device="cuda")
    ref = fp8_linear_ref(xx, w, ws, xs)
    try:
        out = (fk.skinny_fp8_linear_triton if m <= 16 else fk.scaled_mm_fp8_linear)(xx, w, ws, xs)
        err = ((out.double() - ref.double()).norm() / ref.double().norm()).item()
        print(m, dt, "rel", err, "finite", bool(torch.isfinite(out).all()), out.flatten()[:3].tolist(),
              ref.flatten()[:3].tolist())
    except Exception as e:
        print(m, dt, "ERROR", type(e).__name__, str(e)[:300])
