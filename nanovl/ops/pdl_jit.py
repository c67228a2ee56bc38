"""The device side of programmatic dependent launch: prologue helpers for our Triton kernels
(see `pdl.py` for when and why). With USE_PDL false they compile to nothing."""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def pdl_release(USE_PDL: tl.constexpr):
    """Let the next kernel become resident now (a hint; it still waits for this one to finish)."""
    if USE_PDL:
        tl.extra.cuda.gdc_launch_dependents()


@triton.jit
def pdl_wait(USE_PDL: tl.constexpr):
    """Wait until the previous kernel has finished and its writes are visible."""
    if USE_PDL:
        tl.extra.cuda.gdc_wait()


@triton.jit
def pdl_enter(USE_PDL: tl.constexpr):
    """The prologue of a kernel with nothing to prefetch: release the successor, then wait."""
    pdl_release(USE_PDL)
    pdl_wait(USE_PDL)
