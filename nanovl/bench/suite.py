"""The benchmark run as a list of guarded measurements writing one JSON results file.

Each measurement runs under a guard: an out-of-memory or a failing kernel is recorded and the
next one runs; a non-fatal error is retried once on a fallback (eager decode for a failed CUDA
graph, then the reference ops). The results file is rewritten after every measurement, and a
later process given the same file resumes: it skips what is done, so a driver script can rerun
the rest in a fresh process (say with `NANOVL_FORCE_REF=1`) after a CUDA error killed one.
"""
from __future__ import annotations

import json
import math
import os
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import torch

from nanovl.ops.dispatch import kernel_failures, use_reference_ops

EXIT_CUDA_LOST = 3  # the process's CUDA context is unusable: the driver starts a new process


@dataclass
class Item:
    """One measurement: `run()` -> record dict, appended to results[section] under `key`."""

    section: str
    key: str
    run: Callable[[], dict]
    fallback: Callable[[], dict] | None = None
    tags: dict = field(default_factory=dict)
    retry_with_reference: bool = True  # False where the run does not use nanovl.ops


def _finite(o):
    if isinstance(o, float) and not math.isfinite(o):
        return None
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    return o


class Results:
    """The results dict, loaded from `path` when it exists, saved after every change."""

    def __init__(self, path: str | None, fresh: dict):
        self.path = path
        self.data = fresh
        if path and os.path.exists(path):
            with open(path) as f:
                self.data = json.load(f)
        self.data.setdefault("done", [])
        self.data.setdefault("notes", [])
        for name in ("prefill", "decode", "ttft", "hf_prefill", "hf_decode"):
            self.data.setdefault(name, [])
        running = self.data.get("running")
        if running:
            # the last process died inside this measurement (a CUDA error or a kill): under forced
            # reference ops it is tried again, otherwise it is reported as lost
            note = f"process died while measuring {running}"
            self.data["notes"].append(note + ("; retried with reference ops"
                                              if os.environ.get("NANOVL_FORCE_REF") == "1" else ""))
            if os.environ.get("NANOVL_FORCE_REF") != "1":
                self.add(_section_of(running), running, {"error": "process died (see log)"})
            self.data["running"] = None

    def save(self) -> None:
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(_finite(self.data), f, indent=1, default=str)
        os.replace(tmp, self.path)

    def add(self, section: str, key: str, record: dict) -> None:
        self.data[section].append({"key": key, **record})
        self.data["done"].append(key)
        self.data["running"] = None
        self.data["kernel_failures"] = kernel_failures()
        self.save()


def _section_of(key: str) -> str:
    head = key.split(":")[0]
    return {"image": "ttft", "video": "ttft"}.get(head, head)


def _describe(e: BaseException) -> str:
    if isinstance(e, torch.OutOfMemoryError) or "out of memory" in str(e).lower():
        return "out of memory"
    return f"{type(e).__name__}: {e}"[:300]


def _cuda_alive() -> bool:
    if not torch.cuda.is_available():
        return True
    try:
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        return True
    except Exception:
        return False


def _attempt(fn: Callable[[], dict]) -> tuple[dict | None, str | None]:
    try:
        return fn(), None
    except Exception as e:  # a failed measurement is reported, never fatal to the run
        traceback.print_exc()
        return None, _describe(e)


def run_items(items: list[Item], res: Results, *, deadline: float, progress: Callable[[str, dict], None]) -> None:
    """Run the items not yet done, in order, each guarded (see module docstring).

    Exits the process with EXIT_CUDA_LOST when an error leaves CUDA unusable."""
    for it in items:
        if it.key in res.data["done"]:
            continue
        if time.time() > deadline:
            res.add(it.section, it.key, {**it.tags, "error": "skipped: out of time"})
            continue
        res.data["running"] = it.key
        res.save()
        t0 = time.time()
        record, err = _attempt(it.run)
        errors = []
        tries = [("fallback", it.fallback)] if it.fallback is not None else []
        if it.retry_with_reference and os.environ.get("NANOVL_FORCE_REF") != "1":
            tries.append(("reference ops", it.run))
        for name, fn in tries:
            if record is not None:
                break
            errors.append(err)
            if not _cuda_alive():
                res.data["notes"].append(f"{it.key}: CUDA context lost ({err})")
                res.save()
                raise SystemExit(EXIT_CUDA_LOST)
            if err == "out of memory" or time.time() > deadline:
                break
            print(f"[bench] {it.key} failed ({err}); retrying with the {name}", flush=True)
            if name == "reference ops":
                with use_reference_ops():
                    record, err = _attempt(fn)
                if record is not None:
                    record["ops"] = "reference (after a kernel error)"
            else:
                record, err = _attempt(fn)
        if record is None:
            if not _cuda_alive():
                res.data["notes"].append(f"{it.key}: CUDA context lost ({err})")
                res.save()  # still `running`: the next process retries it on the reference ops
                raise SystemExit(EXIT_CUDA_LOST)
            record = {**it.tags, "error": err}
        if errors:
            record["first_error"] = errors[0]
        record["wall_s"] = time.time() - t0
        res.add(it.section, it.key, record)
        progress(it.key, record)
