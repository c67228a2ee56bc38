"""Host side of the batch-1 GEMV's L2 prefetch: which weight each decode projection warms for the next.

Why: at batch 1 a decode step is ~140 matrix-vector products with small kernels between them
(norms, the conv and SSM updates, attention). While those run, and while the last programs of a
product finish, HBM is idle; each product pays its first bytes' latency again (H200: ~5 us a
product beyond streaming its weight, PERFORMANCE.md). Here each one-row GEMV, once its own output
is stored, asks L2 to fetch the first bytes of the projection that comes next in the step, so the
idle stretch moves weight bytes and the next product starts on L2 hits. A prefetch is a hint:
results are bit-equal with it on or off.

Off unless `NANOVL_L2_PREFETCH_MB` > 0 (MiB of the next weight to warm; H100 / H200 have 50 MiB of
L2) until a device run measures it (`decode_profile --l2-prefetch-mb 0,16`). The chain is set by
whoever owns the decode order (`DecodeCudaGraphs`, from `decode_projection_weights`).
"""
from __future__ import annotations

import os

import torch

LINE_BYTES = 128  # an L2 line: one prefetch instruction each
_next: dict[int, torch.Tensor] = {}  # a weight's data_ptr -> the next weight's bytes (kept alive here)


def prefetch_bytes() -> int:
    """Bytes of the next weight each GEMV warms (`NANOVL_L2_PREFETCH_MB`, default 0: off)."""
    raw = os.environ.get("NANOVL_L2_PREFETCH_MB", "0")
    try:
        mib = float(raw)
    except ValueError:
        raise ValueError(f"NANOVL_L2_PREFETCH_MB must be a number of MiB, got {raw!r}") from None
    return max(0, int(mib * (1 << 20)))


def set_chain(weights: list[torch.Tensor]) -> None:
    """Weights in the order one decode step reads them; the last one warms the first (the next
    step's). Weights that are not contiguous are left out (the kernel reads lines of bytes)."""
    usable = [w for w in weights if w.is_contiguous()]
    for w, nxt in zip(usable, usable[1:] + usable[:1]):
        _next[w.data_ptr()] = nxt.detach().view(-1).view(torch.uint8)


def clear_chain() -> None:
    _next.clear()


def next_lines(weight: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """(the next weight's bytes, lines of it to warm) for a GEMV over `weight`, or None (off, or
    `weight` is in no chain)."""
    nbytes = prefetch_bytes()
    nxt = _next.get(weight.data_ptr()) if nbytes else None
    if nxt is None:
        return None
    lines = min(nbytes, nxt.numel()) // LINE_BYTES
    return (nxt, lines) if lines else None
