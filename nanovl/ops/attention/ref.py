"""Plain-PyTorch causal GQA attention over a KV cache whose rows hold different lengths (SPEC §1b).

No positional encoding: Nemotron-H attention layers see positions only through the causal mask.
Scores and softmax run in fp32.
"""
from __future__ import annotations

import torch


def _check(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> None:
    if k_cache.shape != v_cache.shape:
        raise ValueError(f"attention: k_cache {tuple(k_cache.shape)} and v_cache {tuple(v_cache.shape)} differ")
    if q.shape[-2] % k_cache.shape[1]:
        raise ValueError(f"attention: {q.shape[-2]} query heads are not divisible by {k_cache.shape[1]} kv heads")


def prefill_attention_ref(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                          start_pos: torch.Tensor, scale: float) -> torch.Tensor:
    """Causal attention of T new queries per row over that row's cache (new keys already written).

    Args:
        q: [B, T, Hq, Dh] queries of positions start_pos[b] .. start_pos[b]+T-1.
        k_cache, v_cache: [B, Hkv, S, Dh]; row b holds valid keys at 0 .. start_pos[b]+T-1.
        start_pos: LongTensor [B], tokens in each row's cache before this call.
        scale: softmax scale (head_dim ** -0.5).
    Returns:
        [B, T, Hq, Dh] in q's dtype.
    """
    _check(q, k_cache, v_cache)
    t_len, s_len = q.shape[1], k_cache.shape[2]
    q_pos = start_pos.to(q.device)[:, None] + torch.arange(t_len, device=q.device)  # [B, T]
    # key j is visible to the query at position i iff j <= i (this also hides the unused tail of the cache)
    mask = torch.arange(s_len, device=q.device)[None, None, :] <= q_pos[:, :, None]  # [B, T, S]
    # plain math, no SDPA: the reference must not share a library path with the kernel it checks
    group = q.shape[2] // k_cache.shape[1]
    k = k_cache.float().repeat_interleave(group, dim=1)  # [B, Hq, S, Dh]
    v = v_cache.float().repeat_interleave(group, dim=1)
    scores = torch.einsum("bthd,bhsd->bhts", q.float(), k) * scale
    scores = scores.masked_fill(~mask[:, None], float("-inf"))
    o = torch.einsum("bhts,bhsd->bthd", torch.softmax(scores, dim=-1), v)  # [B, T, Hq, Dh]
    return o.to(q.dtype)


def decode_attention_ref(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor,
                         seq_lens: torch.Tensor, scale: float) -> torch.Tensor:
    """Attention of one new query per row over the first seq_lens[b] cached keys (new key included).

    Args:
        q: [B, Hq, Dh]; k_cache, v_cache: [B, Hkv, S, Dh]; seq_lens: LongTensor [B] (>= 1).
        scale: softmax scale.
    Returns:
        [B, Hq, Dh] in q's dtype.
    """
    return prefill_attention_ref(q[:, None], k_cache, v_cache, seq_lens - 1, scale)[:, 0]
