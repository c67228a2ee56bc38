"""Programmatic dependent launch (PDL) for the decode kernels (Hopper and later; env `NANOVL_PDL`).

Why: a batch-1 decode step is ~300 kernels back to back, most of them small and bound by latency
(norms, the conv and state updates), between the matrix-vector products. With PDL a kernel may be
made resident while the one before it still runs: it releases its successor
(`gdc_launch_dependents`: on entry in EAGER mode, after its own wait in BOUNDED mode), may read
what no kernel writes (weights: a projection's first tile, a norm's or the conv's weights), and
waits for its predecessor to finish and flush (`gdc_wait`) before it reads anything else or writes
at all. Such a kernel is safe after any kernel, ours or torch's (one launched without PDL releases
its successor only when it ends), and a kernel launched without PDL ignores both calls. On the
H200 it took ~160 us off the 6.6 ms batch-1 step, and added 0.9-1.5 ms to the batch-16 one.

By default (`auto`) only the batch-1 decode graphs launch with PDL, where a device run measured it
faster (docs/PERFORMANCE.md); `python -m nanovl.bench.decode_profile --pdl 0,1,2,auto` profiles
each setting; `nanovl bench` runs as the env says. This module is the host side (no Triton
import); the kernels' prologue helpers are in `pdl_jit.py`.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import os

import torch


OFF, EAGER, BOUNDED = 0, 1, 2
_MODES = {"0": OFF, "1": EAGER, "2": BOUNDED}
# the mode `auto` picks inside decode_batch(): measured on the H200 (docs/PERFORMANCE.md,
# 2026-12-04), EAGER made the batch-1 step 2.3% faster and the batch-16 step 15% slower
_AUTO_BY_ROWS = {1: EAGER}
_auto_mode: contextvars.ContextVar[int] = contextvars.ContextVar("nanovl_pdl_auto", default=OFF)


def setting() -> str:
    """NANOVL_PDL: `auto` (the default: PDL where a device run measured it faster), or 0 / 1 / 2 for
    every kernel launch: off, EAGER (release the successor on entry), BOUNDED (after the wait)."""
    value = os.environ.get("NANOVL_PDL", "auto")
    if value != "auto" and value not in _MODES:
        raise ValueError(f"NANOVL_PDL must be auto, 0, 1 or 2, not {value!r}")
    return value


def pdl_mode(t: torch.Tensor) -> int:
    """How a kernel on `t`'s device launches: OFF, EAGER or BOUNDED; never PDL where it cannot run
    (not CUDA, before sm_90, a Triton without grid dependency control)."""
    value = setting()
    mode = _auto_mode.get() if value == "auto" else _MODES[value]
    return mode if mode != OFF and device_can(t) else OFF


def device_can(t: torch.Tensor) -> bool:
    """Whether kernels on `t`'s device can launch with PDL (CUDA, sm_90+, Triton with it)."""
    if not t.is_cuda:
        return False
    return _device_can(t.device.index if t.device.index is not None else torch.cuda.current_device())


def pdl_wanted(t: torch.Tensor) -> bool:
    """True when a kernel on `t`'s device launches with PDL in either mode."""
    return pdl_mode(t) != OFF


@contextlib.contextmanager
def decode_batch(rows: int):
    """Inside: kernels launch as `auto` picks for a decode step of `rows` rows (DecodeCudaGraphs
    captures each bucket's step in one). Prefill and the other eager work stay plain."""
    token = _auto_mode.set(_AUTO_BY_ROWS.get(rows, OFF))
    try:
        yield
    finally:
        _auto_mode.reset(token)


def launch_options(pdl: int) -> dict:
    """The launch keyword for a PDL launch (none otherwise, so Triton without it still launches)."""
    return {"launch_pdl": True} if pdl else {}


@functools.lru_cache(maxsize=None)
def _device_can(index: int) -> bool:
    try:  # Triton gained grid dependency control in 3.3
        from triton.language.extra.cuda import gdc_launch_dependents, gdc_wait  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.get_device_capability(index)[0] >= 9
