"""The device side of programmatic dependent launch: prologue helpers for our Triton kernels
(see `pdl.py` for when and why). USE_PDL is the mode of `pdl.pdl_mode`: 0 compiles to nothing,
EAGER (1) releases the successor on entry, BOUNDED (2) only once this kernel's own wait is over."""
from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def pdl_release(USE_PDL: tl.constexpr):
    """In EAGER mode let the next kernel become resident now (it still waits for this one to finish).
    That one releases its own successor on entry too, so a chain of kernels can sit waiting at once."""
    if USE_PDL == 1:
        tl.extra.cuda.gdc_launch_dependents()


@triton.jit
def pdl_wait(USE_PDL: tl.constexpr):
    """Wait until the previous kernel has finished and its writes are visible; in BOUNDED mode then
    release the successor, so at most one kernel waits behind the running one."""
    if USE_PDL:
        tl.extra.cuda.gdc_wait()
    if USE_PDL == 2:
        tl.extra.cuda.gdc_launch_dependents()


@triton.jit
def pdl_enter(USE_PDL: tl.constexpr):
    """The prologue of a kernel with nothing to prefetch: release the successor, then wait."""
    pdl_release(USE_PDL)
    pdl_wait(USE_PDL)
