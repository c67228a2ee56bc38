"""Programmatic dependent launch (PDL) for the decode kernels (Hopper and later; env `NANOVL_PDL=1`).

Why: a batch-1 decode step is ~370 kernels back to back, and each of its 137 matrix-vector
products takes ~5 us more than its bytes at the streaming rate (the H200 fit of
bench/results-h200-2026-12-02-gemv.json: t = 5.6 us + bytes / 4.62 TB/s), ~0.7 ms of a 6.7 ms
step, most likely the first bytes' latency and the last wave's tail. With PDL a kernel may be made
resident while the one before it still runs: it releases its own successor at once
(`gdc_launch_dependents`), may read what no earlier kernel writes (a projection's weights), and
waits for its predecessor to finish and flush (`gdc_wait`) before it reads anything else or writes
at all. A kernel that waits before every other read or write is safe after any kernel, ours or
torch's, and a kernel launched without PDL ignores both calls.

Off by default until a device run measures it (docs/PERFORMANCE.md): `python -m
nanovl.bench.decode_profile --pdl 0,1` profiles both; `nanovl bench` runs as the env says. This
module is the host side (no Triton import); the kernels' prologue helpers are in `pdl_jit.py`.
"""
from __future__ import annotations

import functools
import os

import torch


def pdl_wanted(t: torch.Tensor) -> bool:
    """True when a kernel on `t`'s device should launch with PDL (asked for, CUDA, sm_90+, Triton has it)."""
    if os.environ.get("NANOVL_PDL", "0") != "1" or not t.is_cuda:
        return False
    return _device_can(t.device.index if t.device.index is not None else torch.cuda.current_device())


def launch_options(pdl: bool) -> dict:
    """The launch keyword for a PDL launch (none otherwise, so Triton without it still launches)."""
    return {"launch_pdl": True} if pdl else {}


@functools.lru_cache(maxsize=None)
def _device_can(index: int) -> bool:
    try:  # Triton gained grid dependency control in 3.3
        from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.get_device_capability(index)[0] >= 9
