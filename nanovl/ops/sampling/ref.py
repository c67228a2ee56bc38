"""Reference sampling ops on a batch of logits [B, V]: penalties, filters, sample, logprobs."""
from __future__ import annotations

from typing import Sequence

import torch


def apply_penalties_ref(logits: torch.Tensor, prev_token_ids: Sequence[Sequence[int]],
                        repetition: torch.Tensor, presence: torch.Tensor,
                        frequency: torch.Tensor) -> torch.Tensor:
    """Penalise tokens already seen (a new tensor; the input is left alone).

    Args:
        logits: [B, V] float.
        prev_token_ids: B lists of ids to penalise (the caller picks output and/or prompt ids).
        repetition: [B], > 0; 1 = off. Seen logits > 0 are divided by it, others multiplied.
        presence: [B]; subtracted once from every seen token.
        frequency: [B]; subtracted once per occurrence.
    Returns:
        [B, V] logits, same dtype.
    """
    B, V = logits.shape
    counts = torch.zeros(B, V, dtype=torch.float32, device=logits.device)
    for row, ids in enumerate(prev_token_ids):
        if len(ids):
            idx = torch.as_tensor(list(ids), dtype=torch.long, device=logits.device)
            counts[row].index_add_(0, idx, torch.ones_like(idx, dtype=torch.float32))
    seen = counts > 0
    x = logits.float()
    rep = torch.as_tensor(repetition, dtype=torch.float32, device=x.device).reshape(-1, 1).expand(B, 1)
    scaled = torch.where(x > 0, x / rep, x * rep)
    x = torch.where(seen, scaled, x)
    pres = torch.as_tensor(presence, dtype=torch.float32, device=x.device).reshape(-1, 1)
    freq = torch.as_tensor(frequency, dtype=torch.float32, device=x.device).reshape(-1, 1)
    x = x - pres * seen.float() - freq * counts
    return x.to(logits.dtype)


def apply_temperature_top_k_top_p_min_p_ref(logits: torch.Tensor, temperature: torch.Tensor,
                                            top_k: torch.Tensor | None, top_p: torch.Tensor | None,
                                            min_p: torch.Tensor | None) -> torch.Tensor:
    """Scale by temperature, then drop tokens outside top-k, top-p and min-p (set to -inf).

    Args:
        logits: [B, V] float.
        temperature: [B]; 0 makes the row one-hot on its argmax (greedy).
        top_k: [B] int; 0 = off. Ties with the k-th logit are kept.
        top_p: [B] in (0, 1]; keeps the smallest set of most likely tokens whose mass >= top_p, and
            the tokens tied with the least likely of them.
        min_p: [B] in [0, 1]; drops tokens with prob < min_p * max prob.
        Any of top_k / top_p / min_p may be None: that filter is off for every row. A caller that
        knows on the host that no row uses a filter passes None and saves its sorts of the vocabulary.
    Returns:
        [B, V] float32 logits; the filters apply in the order of the name.
    """
    x = logits.float()
    B, V = x.shape
    dev = x.device
    temperature = torch.as_tensor(temperature, dtype=torch.float32, device=dev).reshape(B)
    greedy = temperature <= 0
    x = x / torch.where(greedy, torch.ones_like(temperature), temperature).unsqueeze(1)
    # 1. top-k: threshold at the k-th largest logit of the row
    if top_k is not None:
        k = torch.as_tensor(top_k, dtype=torch.long, device=dev).reshape(B)
        k = torch.where(k <= 0, torch.full_like(k, V), k.clamp(max=V))
        sorted_x = x.sort(dim=1, descending=True).values
        kth = sorted_x.gather(1, (k - 1).unsqueeze(1))
        x = x.masked_fill(x < kth, float("-inf"))
    # 2. top-p: keep the most likely tokens while the mass strictly above them is < top_p (the first
    # always stays), and every token tied with the last one kept: a threshold on the logit, which a
    # kernel can find without sorting (ops/sampling/kernel.py)
    if top_p is not None:
        p = torch.as_tensor(top_p, dtype=torch.float32, device=dev).reshape(B, 1)
        x_sorted = x.sort(dim=1, descending=True).values
        probs_sorted = x_sorted.softmax(dim=1)
        # the exclusive cumsum by shifting, not `cumsum - probs`: that one can step down by rounding
        mass_above = torch.cat([torch.zeros_like(probs_sorted[:, :1]), probs_sorted.cumsum(dim=1)[:, :-1]], dim=1)
        num_kept = (mass_above < p).sum(dim=1, keepdim=True).clamp(min=1)
        threshold = x_sorted.gather(1, num_kept - 1)
        # p = 1 keeps every token: the rounded cumsum can reach 1 before the tail ends
        x = x.masked_fill((x < threshold) & (p < 1), float("-inf"))
    # 3. min-p: relative to the most likely token, so renormalisation does not matter
    if min_p is not None:
        m = torch.as_tensor(min_p, dtype=torch.float32, device=dev).reshape(B, 1)
        probs = x.softmax(dim=1)
        x = x.masked_fill(probs < m * probs.max(dim=1, keepdim=True).values, float("-inf"))
    # 4. greedy rows: a point mass on the argmax, so any sampler returns it
    argmax = logits.float().argmax(dim=1, keepdim=True)
    one_hot = torch.full_like(x, float("-inf")).scatter(1, argmax, 0.0)
    return torch.where(greedy.unsqueeze(1), one_hot, x)


_M32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, m: int) -> torch.Tensor:
    """(x * m) mod 2**32 for x in [0, 2**32) held in int64, without overflowing int64: the high
    half of m contributes only its product's low 16 bits, shifted up."""
    return (x * (m & 0xFFFF) + (((x * (m >> 16)) & 0xFFFF) << 16)) & _M32


def _mix32(x: torch.Tensor) -> torch.Tensor:
    """A bijection on 32-bit words whose output bits each depend on every input bit (the
    "lowbias32" constants of C. Wellons' hash search); the kernel computes it in uint32."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def uniform_noise_ref(seeds: torch.Tensor, num_columns: int) -> torch.Tensor:
    """Uniform noise in (0, 1) per (row, column), a pure function of the row's seed and the column.

    Counter-based, so a batch of rows each with its own seed is one tensor op (or one kernel), not a
    generator call per row, and a row's draw depends on nothing else in the batch.

    Args:
        seeds: [B] int64 in [0, 2**63).
        num_columns: V.
    Returns:
        [B, V] float32 on the seeds' device: 24 random bits, centred in their cell, so 0 and 1
        never occur.
    """
    seeds = seeds.long().reshape(-1, 1)
    key = _mix32((seeds >> 32) ^ _mix32(seeds & _M32))
    col = torch.arange(num_columns, dtype=torch.long, device=seeds.device).reshape(1, -1)
    bits = _mix32(_mix32((col + key) & _M32) ^ key)
    return ((bits >> 8).float() + 0.5) * 2.0 ** -24


def gumbel_scores_ref(logits: torch.Tensor, seeds: torch.Tensor) -> torch.Tensor:
    """logits + Gumbel noise, -log(-log u): the argmax of a row is a draw from softmax(row)."""
    u = uniform_noise_ref(seeds.to(logits.device), logits.shape[1])
    return logits.float() - torch.log(-torch.log(u))


def sample_ref(logits: torch.Tensor, seeds: torch.Tensor, greedy: torch.Tensor | None = None) -> torch.Tensor:
    """Draw one token per row: the argmax of the logits plus Gumbel noise (an exact categorical draw).

    Args:
        logits: [B, V] float, already filtered (-inf = never).
        seeds: [B] int64, this draw's seed for each row (nanovl.engine draws one per row and step from
            the request's own RNG, so a seeded request gives the same tokens whatever else is in the
            batch, on any device).
        greedy: optional [B] bool; those rows take the argmax of the logits.
    Returns:
        [B] int64 token ids.
    """
    B, V = logits.shape
    if seeds.shape != (B,):
        raise ValueError(f"need one seed per row: seeds of shape {tuple(seeds.shape)} for {B} rows")
    ids = gumbel_scores_ref(logits, seeds).argmax(dim=1)
    if greedy is not None:
        ids = torch.where(greedy.to(ids.device), logits.argmax(dim=1), ids)
    return ids


def compute_logprobs_ref(logits: torch.Tensor, ids: torch.Tensor,
                         k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities of the chosen tokens and of the k most likely ones.

    Args:
        logits: [B, V] float (the distribution to report, e.g. before filtering).
        ids: [B] chosen token ids.
        k: number of top entries (0 gives empty [B, 0] tensors).
    Returns:
        (token_logprobs [B] float32, top_logprobs [B, k] float32, top_ids [B, k] int64).
    """
    logp = logits.float().log_softmax(dim=1)
    chosen = logp.gather(1, ids.long().reshape(-1, 1)).squeeze(1)
    top = logp.topk(k, dim=1) if k > 0 else None
    if top is None:
        empty = logp.new_empty(logp.shape[0], 0)
        return chosen, empty, empty.long()
    return chosen, top.values, top.indices
