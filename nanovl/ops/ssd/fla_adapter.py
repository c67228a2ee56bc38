"""The Mamba2 SSD prompt scan expressed as flash-linear-attention's simple-GLA chunk kernel.

SSD with a scalar decay per head is simple GLA with
    q = C, k = B (groups broadcast to heads), v = dt * x, g = dt * A (log-decay), scale = 1,
and the state kept [V, K] = [P, N] per head (`state_v_first`), which is our [B, H, P, N] layout.
The D skip is added here, outside the kernel. Needs the `fla` package (flash-linear-attention >= 0.6).
"""
from __future__ import annotations

import importlib.util
import logging
import math
import os

import torch

from nanovl.ops.ssd.ref import _dt, _own_copy

log = logging.getLogger("nanovl.ops")
_ok: bool | None = None


def available() -> bool:
    """True when fla's simple-GLA chunk kernel can be imported (any import-time error counts as absent)."""
    global _ok
    if _ok is None:
        _ok = importlib.util.find_spec("fla") is not None
        if _ok:
            try:
                from fla.ops.simple_gla import chunk_simple_gla  # noqa: F401
            except Exception as e:
                log.warning("fla does not import (%s: %s)", type(e).__name__, e)
                _ok = False
            else:
                _trim_autotune()
        if not _ok:
            log.warning("flash-linear-attention (fla) is not importable: ssd_chunk_scan uses the reference")
    return _ok


def backward_refusal() -> str | None:
    """Why fla's simple-GLA backward would refuse to run here, or None. fla 0.6 raises in its
    backward (chunk_bwd_dqkwg) on Hopper GPUs with Triton >= 3.4 and < 3.7.1 (miscompiled results,
    fla issue #640) unless tilelang serves that function instead. Seen on the lent H200 (Triton
    3.6): knowing it before the forward lets the op fall back at once instead of failing in
    `backward()` after the forward has run."""
    try:
        from fla.utils import IS_NVIDIA_HOPPER, TRITON_ABOVE_3_4_0, TRITON_ABOVE_3_7_1
    except Exception:  # an fla without these flags has no such guard
        return None
    if IS_NVIDIA_HOPPER and TRITON_ABOVE_3_4_0 and not TRITON_ABOVE_3_7_1 \
            and importlib.util.find_spec("tilelang") is None:
        return ("fla's simple-GLA backward refuses Hopper GPUs with Triton >= 3.4, < 3.7.1 "
                "(fla issue #640); install Triton >= 3.7.1 or tilelang to train on it")
    return None


def _tuner(kernel):
    while not hasattr(kernel, "configs") and hasattr(kernel, "fn"):
        kernel = kernel.fn  # unwrap @triton.heuristics
    return kernel


def _keep_block_configs(tuner) -> None:
    blocks = {(c.kwargs.get("BK"), c.kwargs.get("BV")) for c in tuner.configs}
    block = (64, 64) if (64, 64) in blocks else min(blocks, key=lambda b: (b[0] or 0) * (b[1] or 0))
    keep = [c for c in tuner.configs if (c.kwargs.get("BK"), c.kwargs.get("BV")) == block
            and c.num_warps in (4, 8) and c.num_stages in (2, 3)]
    tuner.configs = keep[:4] or tuner.configs[:4]


def _trim_autotune() -> None:
    """Cut the autotune configs of fla's kernels on our path: the state kernel from 48 to 4
    (BK = BV = 64 on Hopper, 4 or 8 warps, 2 or 3 stages), the cumsum from 4 to 1 (4 warps), and
    for training the backward state kernel (same 48 configs) like the forward one.
    Autotuning all 48 costs about half a minute per new shape, more than a short run has.
    `NANOVL_FLA_FULL_AUTOTUNE=1` keeps them all."""
    if os.environ.get("NANOVL_FLA_FULL_AUTOTUNE", "0") == "1":
        return
    try:
        from fla.ops.common import chunk_h
        from fla.ops.utils import cumsum

        _keep_block_configs(_tuner(chunk_h.chunk_fwd_kernel_h))
        tuner = _tuner(cumsum.chunk_local_cumsum_scalar_kernel)
        tuner.configs = [c for c in tuner.configs if c.num_warps == 4][:1] or tuner.configs[:1]
    except Exception as e:  # a different fla layout: keep its full autotune
        log.warning("could not trim fla's autotune configs (%s: %s)", type(e).__name__, e)
    try:
        from fla.ops.common import chunk_h

        _keep_block_configs(_tuner(chunk_h.chunk_bwd_kernel_dh))
    except Exception as e:
        log.warning("could not trim the autotune configs of fla's backward (%s: %s)", type(e).__name__, e)


def simple_gla(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor,
               initial_state: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """The SSD scan proper on prepared inputs (see module docstring).

    Args:
        q, k: [B, T, H, N] (C and B per head); v: [B, T, H, P] = dt * x; g: [B, T, H] fp32 = dt * A;
        initial_state: [B, H, P, N] or None.
    Returns:
        y: [B, T, H, P] in v's dtype (no D skip); final_state: [B, H, P, N] fp32.
    """
    if not available():
        raise RuntimeError("ssd chunk scan: flash-linear-attention (fla) is not importable")
    from fla.ops.simple_gla import chunk_simple_gla

    # fla saves h0 for its backward and callers overwrite their state in place afterwards (_own_copy)
    h0 = None if initial_state is None else _own_copy(initial_state).contiguous()
    y, final = chunk_simple_gla(q, k, v, g=g, scale=1.0, initial_state=h0, output_final_state=True,
                                state_v_first=True)
    return y.to(v.dtype).contiguous(), final


def ssd_chunk_scan_fla(x: torch.Tensor, dt: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                       D: torch.Tensor | None = None, dt_bias: torch.Tensor | None = None,
                       initial_state: torch.Tensor | None = None,
                       dt_limit: tuple[float, float] = (0.0, math.inf)) -> tuple[torch.Tensor, torch.Tensor]:
    """Chunked SSD via fla with the input preparation in plain torch (the unfused twin of
    `ssd_chunk_scan_triton`). Shapes as `ssd_chunk_scan_ref`. With grad enabled it raises before any
    work where fla's backward is known to refuse (`backward_refusal`)."""
    reason = backward_refusal() if torch.is_grad_enabled() else None
    if reason:
        raise RuntimeError(reason)
    rep = x.shape[2] // B.shape[2]
    dt = _dt(dt, dt_bias, dt_limit)  # [B, T, H] fp32
    v = (x.float() * dt[..., None]).to(x.dtype)  # [B, T, H, P]
    q = C.to(x.dtype).repeat_interleave(rep, dim=2)  # [B, T, H, N]
    k = B.to(x.dtype).repeat_interleave(rep, dim=2)
    y, final = simple_gla(q, k, v, dt * A.float(), initial_state)
    if D is not None:
        y = torch.addcmul(y.float(), x.float(), D.float()[:, None]).to(x.dtype)
    return y, final
