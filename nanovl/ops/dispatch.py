"""The one place that decides between reference ops and GPU kernels (STYLE.md section D).

A kernel runs iff its tensors are on CUDA (or `TRITON_INTERPRET=1`: Triton's CPU interpreter,
for checks without a GPU), Triton imports, the op's `kernel.py` imports, the
reference path is not forced (env `NANOVL_FORCE_REF=1` or `use_reference_ops()`), and the kernel
has not failed before in this process. A kernel that raises (a Triton compile error, say) is
logged as a warning, recorded in `kernel_failures()`, and its op uses the reference from then on:
a GPU run then degrades in speed, not in results. Tests assert that no kernel failed.

CPU tensors (not interpreting, reference not forced) take the op's `cpu.py` twin when it names
one (`cpu_launcher`): plain torch like the reference, but through torch's fused CPU paths (SDPA,
chunks batched together) where the reference spells the math out step by step. It follows the
same rules: tested against the reference, and a failure falls back to it.

Training (`use_training_ops()`): most of our Triton kernels are forward-only, so their outputs
carry no `grad_fn` and would silently cut the gradient. In that mode an op leaves the reference
only through its differentiable launcher (`train_launcher`, an autograd-capable kernel such as
fla's chunk scan); ops without one run their reference.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import logging
import os
import sys
import threading
from types import ModuleType
from typing import Callable

import torch

log = logging.getLogger("nanovl.ops")
_state = threading.local()
_logged: set[str] = set()
_failed: dict[str, str] = {}


def _interpreting() -> bool:
    # debug switch: with Triton's CPU interpreter on, CPU tensors take the kernels too
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


def _forced_ref() -> bool:
    return getattr(_state, "force_ref", False) or os.environ.get("NANOVL_FORCE_REF", "0") == "1"


@contextlib.contextmanager
def _thread_flag(name: str, enabled: bool):
    """Set a per-thread dispatch flag for the block, restoring the outer value after."""
    prev = getattr(_state, name, False)
    setattr(_state, name, enabled)
    try:
        yield
    finally:
        setattr(_state, name, prev)


def use_reference_ops(enabled: bool = True):
    """Force the plain-PyTorch reference ops inside the block (tests run both paths)."""
    return _thread_flag("force_ref", enabled)


def training_ops() -> bool:
    """True inside `use_training_ops()`."""
    return getattr(_state, "training", False)


def use_training_ops(enabled: bool = True):
    """Inside the block only differentiable kernels run (see module docstring); the rest use the reference."""
    return _thread_flag("training", enabled)


@functools.cache
def triton_available() -> bool:
    """True when CUDA is up and Triton imports (any import-time error counts as absent)."""
    if not (torch.cuda.is_available() or _interpreting()):
        return False
    try:
        import triton  # noqa: F401
    except Exception as e:  # a broken install must not take the reference path down with it
        log.warning("triton does not import (%s: %s): every op uses its reference", type(e).__name__, e)
        return False
    return True


@functools.cache
def kernel_module(package: str) -> ModuleType | None:
    """`<package>.kernel` imported once, or None when absent or failing to import (logged)."""
    name = package + ".kernel"
    if importlib.util.find_spec(name) is None:
        return None
    try:
        return importlib.import_module(name)
    except Exception as e:
        log.warning("%s does not import (%s: %s): its ops use the reference", name, type(e).__name__, e)
        return None


def use_kernel(op: str, *tensors: torch.Tensor | None) -> bool:
    """True when `op` should run its GPU kernel for these tensors; logs the choice once per op."""
    on_cuda = _interpreting() or all(t.is_cuda for t in tensors if t is not None)
    choice = on_cuda and not _forced_ref() and op not in _failed and triton_available()
    key = f"{op}:{choice}"
    if key not in _logged:
        _logged.add(key)
        log.info("op %s uses the %s path", op, "triton" if choice else "reference")
    return choice


def _on_cpu(tensors: tuple) -> bool:
    # `is_cpu`, not `device.type`: building a device object per tensor costs more than the check
    return all(t is None or t.is_cpu for t in tensors)


def _call_or_record(op: str, fn: Callable, args: tuple, bad_input: tuple[type, ...] = ()) -> tuple[bool, object]:
    """(True, fn(*args)), or (False, None) after recording and logging a failure of `fn`.
    Exceptions of the `bad_input` types pass through unrecorded: the caller's inputs are at fault."""
    try:
        return True, fn(*args)
    except torch.OutOfMemoryError:
        raise  # not a kernel fault: the reference would need more memory still
    except bad_input:
        raise
    except Exception as e:
        _failed[op] = f"{type(e).__name__}: {e}"[:500]
        log.warning("op %s: kernel failed, using the reference from now on: %s", op, _failed[op])
        return False, None


def run_op(op: str, package: str, launcher: str, ref: Callable, args: tuple, tensors: tuple,
           ready: str | None = None, train_launcher: str | None = None,
           cpu_launcher: str | None = None) -> object:
    """Call `<package>.kernel.<launcher>(*args)` when `use_kernel(op, *tensors)` (and the kernel
    module's `ready()` function, if named, returns True); on CPU tensors (not interpreting) its
    `<package>.cpu.<cpu_launcher>(*args)` when named (`_run_on_cpu`); else `ref(*args)`. Under
    `use_training_ops()` the launcher is `train_launcher` (op key `<op>[train]`), and an op without
    one runs `ref`.

    A kernel or twin that raises is recorded (see module docstring; the twin's key is `<op>[cpu]`)
    and the call is answered by the reference; our launchers raise before they write, so the
    inputs are still intact."""
    if training_ops():
        if train_launcher is None:
            return ref(*args)
        op, launcher = f"{op}[train]", train_launcher
    elif _on_cpu(tensors) and not _interpreting():
        return _run_on_cpu(op, package, cpu_launcher, ref, args)
    mod = kernel_module(package) if use_kernel(op, *tensors) else None
    if mod is not None and (ready is None or getattr(mod, ready)()):
        ok, out = _call_or_record(op, getattr(mod, launcher), args)
        if ok:
            return out
    return ref(*args)


def _run_on_cpu(op: str, package: str, cpu_launcher: str | None, ref: Callable, args: tuple) -> object:
    """CPU tensors: `<package>.cpu.<cpu_launcher>(*args)` unless there is none, the reference is
    forced or the twin failed before (key `<op>[cpu]`); else `ref(*args)`. Few steps on purpose: a
    decode step calls ~40 ops, and the general dispatch cost ~30 us of each on a 2-core CPU (~18 here)."""
    key = f"{op}[cpu]"
    choice = cpu_launcher is not None and key not in _failed and not _forced_ref()
    if f"{key}:{choice}" not in _logged:
        _logged.add(f"{key}:{choice}")
        log.info("op %s on the CPU uses the %s", op, "torch twin" if choice else "reference")
    if choice:
        module = sys.modules.get(package + ".cpu") or importlib.import_module(package + ".cpu")
        # a twin takes every input its reference takes and checks them with the reference's own
        # checks, so its ValueError is the caller's mistake: raised as is, the twin kept for later calls
        ok, out = _call_or_record(key, getattr(module, cpu_launcher), args, bad_input=(ValueError,))
        if ok:
            return out
    return ref(*args)


def kernel_failures() -> dict[str, str]:
    """op -> error of every kernel that failed in this process (its op now runs the reference)."""
    return dict(_failed)
