"""The one place that decides between reference ops and GPU kernels (STYLE.md section D).

A kernel runs iff its tensors are on CUDA, Triton imports, and the reference path is not
forced (env `NANOVL_FORCE_REF=1` or the `use_reference_ops()` context manager).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading

import torch

log = logging.getLogger("nanovl.ops")
_state = threading.local()
_logged: set[str] = set()
_triton_ok: bool | None = None


def _forced_ref() -> bool:
    return getattr(_state, "force_ref", False) or os.environ.get("NANOVL_FORCE_REF", "0") == "1"


@contextlib.contextmanager
def use_reference_ops(enabled: bool = True):
    """Force the plain-PyTorch reference ops inside the block (tests run both paths)."""
    prev = getattr(_state, "force_ref", False)
    _state.force_ref = enabled
    try:
        yield
    finally:
        _state.force_ref = prev


def triton_available() -> bool:
    global _triton_ok
    if _triton_ok is None:
        try:
            import triton  # noqa: F401
            _triton_ok = torch.cuda.is_available()
        except ImportError:
            _triton_ok = False
    return _triton_ok


def use_kernel(op: str, *tensors: torch.Tensor) -> bool:
    """True when `op` should run its GPU kernel for these tensors; logs the choice once per op."""
    on_cuda = all(t.is_cuda for t in tensors if t is not None)
    choice = on_cuda and not _forced_ref() and triton_available()
    key = f"{op}:{choice}"
    if key not in _logged:
        _logged.add(key)
        log.info("op %s uses the %s path", op, "triton" if choice else "reference")
    return choice
