"""One check of a device name a user typed (`--device`, EngineConfig.device), before any model work."""
from __future__ import annotations

import torch


def check_device(spec: str) -> torch.device:
    """"auto" (CUDA when present, else the CPU), "cpu", "cuda" or "cuda:N" -> torch.device.

    Raises ValueError in one line for a name torch does not know, a CUDA device on a machine or a
    torch build without CUDA, or an index past the GPUs present (torch would fail later, mid-load,
    with an AssertionError or a RuntimeError and a stack trace)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {spec!r} is not a device name (auto, cpu, cuda, cuda:N)") from None
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {spec!r}: nanovl runs on cpu or cuda")
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"device {spec!r}: no CUDA device here (torch {torch.__version__}); use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise ValueError(f"device {spec!r}: only {count} CUDA device(s) here (cuda:0..cuda:{count - 1})")
    return dev
