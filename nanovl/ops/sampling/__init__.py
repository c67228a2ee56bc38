"""Sampling ops: penalties, temperature/top-k/top-p/min-p, the draw, and logprobs.

Only references exist so far; they run on CPU and CUDA alike. A `kernel.py` beside them is
picked up through `use_kernel` once it exists (STYLE.md section D).
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Callable

from nanovl.ops.dispatch import use_kernel
from nanovl.ops.sampling.ref import (
    apply_penalties_ref,
    apply_temperature_top_k_top_p_min_p_ref,
    compute_logprobs_ref,
    sample_ref,
)

_HAS_KERNEL = importlib.util.find_spec(__name__ + ".kernel") is not None


def _impl(name: str, ref: Callable, *tensors) -> Callable:
    if _HAS_KERNEL and use_kernel(f"sampling.{name}", *tensors):
        return getattr(importlib.import_module(__name__ + ".kernel"), f"{name}_triton")
    return ref


def apply_penalties(logits, prev_token_ids, repetition, presence, frequency):
    """See `apply_penalties_ref`: logits [B, V] -> penalised logits [B, V]."""
    fn = _impl("apply_penalties", apply_penalties_ref, logits)
    return fn(logits, prev_token_ids, repetition, presence, frequency)


def apply_temperature_top_k_top_p_min_p(logits, temperature, top_k, top_p, min_p):
    """See `apply_temperature_top_k_top_p_min_p_ref`: logits [B, V] -> filtered logits [B, V]."""
    fn = _impl("apply_temperature_top_k_top_p_min_p", apply_temperature_top_k_top_p_min_p_ref, logits)
    return fn(logits, temperature, top_k, top_p, min_p)


def sample(logits, generators, *, greedy=None):
    """See `sample_ref`: logits [B, V] -> ids [B]; seeded rows use their own generator."""
    return _impl("sample", sample_ref, logits)(logits, generators, greedy=greedy)


def compute_logprobs(logits, ids, k):
    """See `compute_logprobs_ref`: -> (token_logprobs [B], top_logprobs [B, k], top_ids [B, k])."""
    return _impl("compute_logprobs", compute_logprobs_ref, logits)(logits, ids, k)


__all__ = ["apply_penalties", "apply_temperature_top_k_top_p_min_p", "sample", "compute_logprobs"]
