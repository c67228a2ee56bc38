"""Mamba2 SSD ops: the one dispatcher between the reference and a GPU kernel."""
from __future__ import annotations

import functools
import importlib
import importlib.util
import math

import torch

from nanovl.ops.dispatch import use_kernel
from nanovl.ops.ssd.ref import ssd_chunk_scan_ref, ssd_state_update_ref


@functools.cache
def _kernel():
    # the Triton launchers live in kernel.py once written; until then every call takes the reference
    if importlib.util.find_spec(__name__ + ".kernel") is None:
        return None
    return importlib.import_module(__name__ + ".kernel")


def ssd_chunk_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                   initial_state: torch.Tensor | None = None,
                   dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD over a prompt; see `ssd_chunk_scan_ref` for shapes."""
    # the prompt scan runs on flash-linear-attention's kernels, so it also needs `fla` installed
    if use_kernel("ssd_chunk_scan", x, dt, B, C) and (k := _kernel()) is not None and k.chunk_scan_available():
        return k.ssd_chunk_scan_triton(x, dt, A, B, C, chunk_size, D, dt_bias, initial_state, dt_limit)
    return ssd_chunk_scan_ref(x, dt, A, B, C, chunk_size, D, dt_bias, initial_state, dt_limit)


def ssd_state_update(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
                     B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None,
                     dt_bias: torch.Tensor | None = None,
                     dt_limit: tuple[float, float] = (0.0, math.inf)) -> torch.Tensor:
    """One-token SSD step (state updated in place); see `ssd_state_update_ref` for shapes."""
    if use_kernel("ssd_state_update", state, x, dt, B, C) and (k := _kernel()) is not None:
        return k.ssd_state_update_triton(state, x, dt, A, B, C, D, dt_bias, dt_limit)
    return ssd_state_update_ref(state, x, dt, A, B, C, D, dt_bias, dt_limit)


__all__ = ["ssd_chunk_scan", "ssd_state_update", "ssd_chunk_scan_ref", "ssd_state_update_ref"]
