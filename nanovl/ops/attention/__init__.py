"""Causal GQA attention ops over a KV cache: the one dispatcher between the reference and a GPU kernel."""
from __future__ import annotations

import functools
import importlib
import importlib.util

import torch

from nanovl.ops.attention.ref import decode_attention_ref, prefill_attention_ref
from nanovl.ops.dispatch import use_kernel


@functools.cache
def _kernel():
    # the Triton launchers live in kernel.py once written; until then every call takes the reference
    if importlib.util.find_spec(__name__ + ".kernel") is None:
        return None
    return importlib.import_module(__name__ + ".kernel")


def prefill_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                      start_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention of T new queries per row; see `prefill_attention_ref` for shapes."""
    if use_kernel("prefill_attention", q, k_cache, v_cache) and (k := _kernel()) is not None:
        return k.prefill_attention_triton(q, k_cache, v_cache, start_pos, scale)
    return prefill_attention_ref(q, k_cache, v_cache, start_pos, scale)


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                     seq_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """One query per row over its first seq_lens[b] keys; see `decode_attention_ref` for shapes."""
    if use_kernel("decode_attention", q, k_cache, v_cache) and (k := _kernel()) is not None:
        return k.decode_attention_triton(q, k_cache, v_cache, seq_lens, scale)
    return decode_attention_ref(q, k_cache, v_cache, seq_lens, scale)


__all__ = ["prefill_attention", "decode_attention", "prefill_attention_ref", "decode_attention_ref"]
