"""A batch of Examples -> one forward pass: encode media, fill `<img>` pairs, pad, masked loss.

Media are encoded first because EVS decides per frame how many tokens a video keeps from the
embeddings themselves (`NemotronVL.encode_video`), and the prompt ids depend on those counts.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nanovl.inputs.evs import retention_mask
from nanovl.train.dataset import Example

IGNORE = -100


@dataclass(frozen=True)
class MediaIds:
    """The ids that frame media embeddings in a prompt."""

    image: int  # `<image>` (one per embedding)
    start: int  # `<img>`
    end: int  # `</img>`
    pad: int = 0


def assemble(ex: Example, counts: list[int], ids: MediaIds) -> tuple[list[int], list[int]]:
    """Fill the k-th `<img></img>` pair of `ex.ids` with counts[k] `<image>` ids.

    Returns:
        (input ids, labels): labels are IGNORE except on the last `ex.n_target` positions,
        which hold the next-token targets (shifted by one, as the LM predicts t+1 from t).
    """
    out: list[int] = []
    k = 0
    for tok in ex.ids:
        out.append(tok)
        if tok == ids.start:
            if k >= len(counts):
                raise ValueError(f"example has more <img> pairs than the {len(counts)} media counts")
            out.extend([ids.image] * counts[k])
            k += 1
    if k != len(counts):
        raise ValueError(f"example has {k} <img> pairs but {len(counts)} media counts were given")
    labels = [IGNORE] * len(out)
    n = len(out)
    for pos in range(n - ex.n_target, n):
        labels[pos - 1] = out[pos]
    return out, labels


def encode_media(model, batch: list[Example]) -> tuple[list[list[int]], list[torch.Tensor]]:
    """Encode every tile and frame of the batch in one ViT call.

    Returns:
        per example: the `<image>` count of each `<img>` pair, and its embeddings [M_i, D] in pair order.
    """
    device = next(model.parameters()).device
    chunks = [m.pixel_values for ex in batch for m in ex.media]
    if not chunks:
        return [[] for _ in batch], [None for _ in batch]
    # a PackedBatch (dataset.pack) holds them already concatenated, maybe pinned: the copy is async
    pixels = getattr(batch, "pixels", None)
    pixels = torch.cat(chunks) if pixels is None else pixels
    embeds = model.encode_images(pixels.to(device, non_blocking=True))  # [N, T, D]
    counts, rows, pos = [], [], 0
    for ex in batch:
        ex_counts, ex_rows = [], []
        for m in ex.media:
            n = m.pixel_values.shape[0]
            e = embeds[pos:pos + n]
            pos += n
            if m.kind == "image":
                ex_counts.append(n * e.shape[1])
                ex_rows.append(e.reshape(-1, e.shape[-1]))
            else:
                keep = retention_mask(e.detach(), m.pruning_rate) if m.pruning_rate > 0 else None
                flat = e.reshape(-1, e.shape[-1])
                if keep is None:
                    ex_counts.extend([e.shape[1]] * n)
                    ex_rows.append(flat)
                else:
                    ex_counts.extend(keep.view(n, -1).sum(1).tolist())
                    ex_rows.append(flat[keep])
        counts.append(ex_counts)
        rows.append(torch.cat(ex_rows) if ex_rows else None)
    return counts, rows


def completion_loss(logits: torch.Tensor, labels: torch.Tensor, token_cap: int | None = None) -> torch.Tensor:
    """Cross-entropy over the positions whose label is not IGNORE, averaged over tokens.

    Args:
        logits: [B, T, V] float; labels: [B, T] with IGNORE where nothing is trained.
        token_cap: None weighs every trained token alike; else example b's tokens weigh
            min(1, token_cap / n_b), so no example counts as more than `token_cap` tokens.
    """
    mask = labels != IGNORE
    if token_cap is None:
        return F.cross_entropy(logits[mask], labels[mask])
    per_token = F.cross_entropy(logits.transpose(1, 2), labels.clamp_min(0), reduction="none")
    weights = (token_cap / mask.sum(dim=1, keepdim=True).clamp_min(1)).clamp(max=1.0) * mask
    return (per_token * weights).sum() / weights.sum().clamp_min(1e-9)


def batch_loss(model, batch: list[Example], ids: MediaIds, *, kv_cache: bool = False,
               token_cap: int | None = None) -> dict[str, torch.Tensor]:
    """Masked next-token loss over the completions of a batch (right-padded). The LM runs without
    state (causal SDPA, no KV cache); `kv_cache=True` runs it through a fresh LMState instead
    (the inference path: cache-writing attention).

    The loss is a mean over trained tokens, so a long completion weighs as many short ones; with
    `token_cap`, an example's tokens are scaled so it counts as at most `token_cap` tokens (a
    ~340-token stepwise sum trace then weighs like a ~100-token page reading, not like three).

    Returns:
        {"loss": scalar, "correct": trained tokens predicted right, "tokens": trained tokens,
         "exact": examples whose whole completion is right, "examples": batch size}.
    """
    device = next(model.parameters()).device
    counts, rows = encode_media(model, batch)
    seqs = [assemble(ex, c, ids) for ex, c in zip(batch, counts)]
    t_max = max(len(s) for s, _ in seqs)
    # padded as Python lists, then one tensor each (a row-by-row copy was 4 ops a row)
    input_ids = torch.tensor([s + [ids.pad] * (t_max - len(s)) for s, _ in seqs], dtype=torch.long)
    labels = torch.tensor([lab + [IGNORE] * (t_max - len(lab)) for _, lab in seqs], dtype=torch.long)
    input_ids, labels = input_ids.to(device), labels.to(device)
    present = [r for r in rows if r is not None]
    image_embeds = torch.cat(present) if present else None
    embeds = model.embed_inputs(input_ids, image_embeds)
    lm = model.language_model
    state = lm.new_state(len(batch), device=device) if kv_cache else None
    logits = lm(inputs_embeds=embeds, state=state).float()
    mask = labels != IGNORE
    loss = completion_loss(logits, labels, token_cap)
    with torch.no_grad():
        right = (logits.argmax(-1) == labels) | ~mask
        exact = right.all(dim=1).sum()
        correct = (right & mask).sum()
    return {"loss": loss, "correct": correct, "tokens": mask.sum(), "exact": exact,
            "examples": torch.tensor(len(batch))}
