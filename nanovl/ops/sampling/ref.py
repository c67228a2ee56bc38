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
        top_p: [B] in (0, 1]; keeps the smallest set of most likely tokens whose mass >= top_p.
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
    # 2. top-p: keep a token while the mass strictly before it is < top_p (the first always stays)
    if top_p is not None:
        p = torch.as_tensor(top_p, dtype=torch.float32, device=dev).reshape(B, 1)
        probs_sorted, order = x.softmax(dim=1).sort(dim=1, descending=True, stable=True)
        mass_before = probs_sorted.cumsum(dim=1) - probs_sorted
        # p = 1 keeps every token: the rounded cumsum can reach 1 before the tail ends
        drop_sorted = (mass_before >= p) & (p < 1)
        drop_sorted[:, 0] = False
        drop = torch.zeros_like(drop_sorted).scatter(1, order, drop_sorted)
        x = x.masked_fill(drop, float("-inf"))
    # 3. min-p: relative to the most likely token, so renormalisation does not matter
    if min_p is not None:
        m = torch.as_tensor(min_p, dtype=torch.float32, device=dev).reshape(B, 1)
        probs = x.softmax(dim=1)
        x = x.masked_fill(probs < m * probs.max(dim=1, keepdim=True).values, float("-inf"))
    # 4. greedy rows: a point mass on the argmax, so any sampler returns it
    argmax = logits.float().argmax(dim=1, keepdim=True)
    one_hot = torch.full_like(x, float("-inf")).scatter(1, argmax, 0.0)
    return torch.where(greedy.unsqueeze(1), one_hot, x)


def sample_ref(logits: torch.Tensor, generators: Sequence[torch.Generator | None], *,
               greedy: torch.Tensor | None = None) -> torch.Tensor:
    """Draw one token per row: argmax(probs / E) with E ~ Exp(1) (an exact categorical draw).

    Args:
        logits: [B, V] float, already filtered.
        generators: B entries; a row with a generator draws its noise from it alone, so a seed
            gives the same tokens whatever else is in the batch; None rows share the global RNG.
        greedy: optional [B] bool; those rows take the argmax without drawing noise.
    Returns:
        [B] int64 token ids.
    """
    B, V = logits.shape
    if len(generators) != B:
        raise ValueError(f"need one generator entry per row: {len(generators)} != {B}")
    probs = logits.float().softmax(dim=1)
    # every row from the global RNG first, then the seeded rows again from their own generators:
    # no host list becomes an index (a host-to-device copy that would wait for the GPU)
    noise = torch.empty_like(probs).exponential_()
    for i, g in enumerate(generators):
        if g is not None:
            noise[i] = torch.empty(V, device=probs.device).exponential_(generator=g)
    # exponential_ may return exactly 0, which would turn a masked token's 0 / 0 into nan
    ids = (probs / noise.clamp_min(torch.finfo(torch.float32).tiny)).argmax(dim=1)
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
