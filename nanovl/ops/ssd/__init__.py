"""Mamba2 SSD ops: the one dispatcher between the reference and a GPU kernel."""
from __future__ import annotations

import math

import torch

from nanovl.ops.dispatch import run_op, training_ops
from nanovl.ops.ssd.ref import ssd_chunk_scan_batched_ref, ssd_chunk_scan_ref, ssd_state_update_ref


def ssd_chunk_scan(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   chunk_size: int, D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                   initial_state: torch.Tensor | None = None,
                   dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD over a prompt; see `ssd_chunk_scan_ref` for shapes."""
    # the prompt scan runs on flash-linear-attention's kernels, so it also needs `fla` (chunk_scan_available);
    # fla's chunk scan has a Triton backward, so training may use it too (ssd_chunk_scan_autograd);
    # training's reference batches the chunks (fewer ops), inference keeps the per-chunk loop
    ref = ssd_chunk_scan_batched_ref if training_ops() else ssd_chunk_scan_ref
    return run_op("ssd_chunk_scan", __name__, "ssd_chunk_scan_triton", ref,
                  (x, dt, A, B, C, chunk_size, D, dt_bias, initial_state, dt_limit), (x, dt, B, C),
                  ready="chunk_scan_available", train_launcher="ssd_chunk_scan_autograd",
                  cpu_launcher="ssd_chunk_scan_cpu")


def ssd_state_update(state: torch.Tensor, x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor,
                     B: torch.Tensor, C: torch.Tensor, D: torch.Tensor | None = None,
                     dt_bias: torch.Tensor | None = None,
                     dt_limit: tuple[float, float] = (0.0, math.inf)) -> torch.Tensor:
    """One-token SSD step (state updated in place); see `ssd_state_update_ref` for shapes."""
    return run_op("ssd_state_update", __name__, "ssd_state_update_triton", ssd_state_update_ref,
                  (state, x, dt, A, B, C, D, dt_bias, dt_limit), (state, x, dt, B, C),
                  cpu_launcher="ssd_state_update_cpu")


__all__ = ["ssd_chunk_scan", "ssd_state_update", "ssd_chunk_scan_ref", "ssd_chunk_scan_batched_ref",
           "ssd_state_update_ref"]
