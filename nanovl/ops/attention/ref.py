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


def check_kv_cache_write(k_cache: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor) -> None:
    """Raise unless new keys and values [B, Hkv, T, Dh] fit the cache [B, Hkv, S, Dh] (both paths check)."""
    if k_new.shape != v_new.shape or k_cache.shape[:2] != k_new.shape[:2] or k_cache.shape[3] != k_new.shape[3]:
        raise ValueError(f"kv_cache_write: new k {tuple(k_new.shape)}, v {tuple(v_new.shape)} do not fit the "
                         f"cache {tuple(k_cache.shape)}")


def kv_cache_write_ref(k_cache: torch.Tensor, v_cache: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor,
                       start_pos: torch.Tensor) -> None:
    """Store new keys and values in the cache, IN PLACE, at positions start_pos[b] + t of row b.

    Args:
        k_cache, v_cache: [B, Hkv, S, Dh] (S the capacity).
        k_new, v_new: [B, Hkv, T, Dh], any strides and float dtype (cast to the cache's).
        start_pos: LongTensor [B], tokens already in each row.
    A position at or past S writes slot S-1 instead (the caller keeps rows within capacity; an
    out-of-range index would kill the CUDA context in a graph replay).
    """
    check_kv_cache_write(k_cache, k_new, v_new)
    b, _, t, _ = k_new.shape
    rows = torch.arange(b, device=k_cache.device)[:, None]
    pos = start_pos.to(k_cache.device)[:, None] + torch.arange(t, device=k_cache.device)  # [B, T]
    pos = pos.clamp_(max=k_cache.shape[2] - 1)
    # advanced indices around a slice put their dims first: [B, T, Hkv, Dh]
    k_cache[rows, :, pos] = k_new.transpose(1, 2).to(k_cache.dtype)
    v_cache[rows, :, pos] = v_new.transpose(1, 2).to(v_cache.dtype)
