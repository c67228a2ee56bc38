"""Causal GQA attention over a KV cache on the CPU: torch's fused SDPA over the used part of the cache.

The reference spells the math out (GQA by repeating keys, fp32 scores over the whole capacity, a
masked softmax) so that it shares no library path with the GPU kernels. On a CPU that costs ~2.5x
transformers' SDPA prefill at 512 tokens, so CPU tensors take this twin instead; tests hold it to
`prefill_attention_ref`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nanovl.ops.attention.ref import _check, check_kv_cache_write, kv_cache_write_ref


def prefill_attention_cpu(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                          start_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """`prefill_attention_ref` (same shapes and masking) through SDPA.

    Args:
        q: [B, T, Hq, Dh] queries of positions start_pos[b] .. start_pos[b]+T-1.
        k_cache, v_cache: [B, Hkv, S, Dh]; row b holds valid keys at 0 .. start_pos[b]+T-1.
        start_pos: LongTensor [B], tokens in each row's cache before this call.
        scale: softmax scale (head_dim ** -0.5).
    Returns:
        [B, T, Hq, Dh] in q's dtype.
    """
    _check(q, k_cache, v_cache)
    t_len = q.shape[1]
    first, last = int(start_pos.min()), int(start_pos.max())
    # keys past the longest row are masked for every query: leave them out instead of scoring them
    used = min(last + t_len, k_cache.shape[2])
    k, v = k_cache[:, :, :used], v_cache[:, :, :used]
    qh = q.transpose(1, 2)  # [B, Hq, T, Dh]
    # SDPA's GQA reads each kv head for its group of query heads without repeating the cache
    gqa = q.shape[2] != k_cache.shape[1]
    if first == last and (t_len == 1 or first == 0) and used == last + t_len:
        # every row as long as the others: a one-token step sees all its keys, a prompt from 0 the
        # causal triangle; neither needs a mask tensor
        o = F.scaled_dot_product_attention(qh, k, v, is_causal=t_len > 1, scale=scale, enable_gqa=gqa)
    else:
        q_pos = start_pos.to(q.device)[:, None] + torch.arange(t_len, device=q.device)  # [B, T]
        mask = torch.arange(used, device=q.device)[None, None, :] <= q_pos[:, :, None]  # [B, T, used]
        o = F.scaled_dot_product_attention(qh, k, v, attn_mask=mask[:, None], scale=scale, enable_gqa=gqa)
    return o.transpose(1, 2)


def decode_attention_cpu(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         seq_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """`decode_attention_ref` through SDPA: q [B, Hq, Dh] over each row's first seq_lens[b] keys."""
    return prefill_attention_cpu(q[:, None], k_cache, v_cache, seq_lens - 1, scale)[:, 0]


def kv_cache_write_cpu(k_cache: torch.Tensor, v_cache: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                       start_pos: torch.Tensor) -> None:
    """`kv_cache_write_ref` (IN PLACE, same clamping at the capacity): rows that start at the same
    position (every row of a one-request step) take one slice assignment instead of index_puts."""
    check_kv_cache_write(k_cache, k_new, v_new)
    t, cap = k_new.shape[2], k_cache.shape[2]
    first, last = int(start_pos.min()), int(start_pos.max())
    if first != last or first + t > cap:
        kv_cache_write_ref(k_cache, v_cache, k_new, v_new, start_pos)
        return
    k_cache[:, :, first:first + t] = k_new
    v_cache[:, :, first:first + t] = v_new
