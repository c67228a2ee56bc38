"""Causal GQA attention over a KV cache on the CPU: torch's fused SDPA over the used part of the cache.

The reference spells the math out (GQA by repeating keys, fp32 scores over the whole capacity, a
masked softmax) so that it shares no library path with the GPU kernels. On a CPU that costs ~2.5x
transformers' SDPA prefill at 512 tokens, so CPU tensors take this twin instead; tests hold it to
`prefill_attention_ref`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from nanovl.ops.attention.ref import _check


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
    group = q.shape[2] // k_cache.shape[1]
    if group > 1:
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
    qh = q.transpose(1, 2)  # [B, Hq, T, Dh]
    if first == last == 0 and used == t_len:
        o = F.scaled_dot_product_attention(qh, k, v, is_causal=True, scale=scale)
    else:
        q_pos = start_pos.to(q.device)[:, None] + torch.arange(t_len, device=q.device)  # [B, T]
        mask = torch.arange(used, device=q.device)[None, None, :] <= q_pos[:, :, None]  # [B, T, used]
        o = F.scaled_dot_product_attention(qh, k, v, attn_mask=mask[:, None], scale=scale)
    return o.transpose(1, 2).contiguous()


def decode_attention_cpu(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         seq_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """`decode_attention_ref` through SDPA: q [B, Hq, Dh] over each row's first seq_lens[b] keys."""
    return prefill_attention_cpu(q[:, None], k_cache, v_cache, seq_lens - 1, scale)[:, 0]
