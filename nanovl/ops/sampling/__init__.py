"""Sampling ops: penalties, temperature/top-k/top-p/min-p, the draw, and logprobs.

The references run on CPU and CUDA alike. On a GPU, `kernel.py` holds Triton twins of the two that
sit between decode steps of a sampled request: the filters (a threshold found by bisection instead
of a sort of the vocabulary) and the draw (Gumbel noise from a counter-based hash, one launch for
every row instead of a generator call per row). Dispatch goes through `use_kernel` (STYLE.md section D).
"""
from __future__ import annotations

from nanovl.ops.dispatch import run_op
from nanovl.ops.sampling.ref import (
    apply_penalties_ref,
    apply_temperature_top_k_top_p_min_p_ref,
    compute_logprobs_ref,
    sample_ref,
    uniform_noise_ref,
)


def apply_penalties(logits, prev_token_ids, repetition, presence, frequency):
    """See `apply_penalties_ref`: logits [B, V] -> penalised logits [B, V]."""
    return apply_penalties_ref(logits, prev_token_ids, repetition, presence, frequency)


def apply_temperature_top_k_top_p_min_p(logits, temperature, top_k, top_p, min_p):
    """See `apply_temperature_top_k_top_p_min_p_ref`: logits [B, V] -> filtered logits [B, V]."""
    return run_op("sampling.filters", __name__, "apply_temperature_top_k_top_p_min_p_triton",
                  apply_temperature_top_k_top_p_min_p_ref, (logits, temperature, top_k, top_p, min_p), (logits,))


def sample(logits, seeds, *, greedy=None):
    """See `sample_ref`: logits [B, V], seeds [B] int64 -> ids [B]."""
    return run_op("sampling.sample", __name__, "sample_triton", sample_ref, (logits, seeds, greedy), (logits,))


def compute_logprobs(logits, ids, k):
    """See `compute_logprobs_ref`: -> (token_logprobs [B], top_logprobs [B, k], top_ids [B, k])."""
    return compute_logprobs_ref(logits, ids, k)


__all__ = ["apply_penalties", "apply_temperature_top_k_top_p_min_p", "sample", "compute_logprobs",
           "uniform_noise_ref"]
