"""Sampler: logits -> token ids via nanovl.ops.sampling, after the grammar masks.

Order per row: grammar mask -> repetition penalty (prompt + output ids) -> presence/frequency
penalties (output ids) -> logprobs of that distribution -> temperature/top-k/top-p/min-p -> draw.
Greedy rows stop at the argmax of the penalised logits, the token the filters and the draw would give.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from nanovl.engine.outputs import TokenLogprob
from nanovl.engine.transfers import to_device_async
from nanovl.ops.sampling import (apply_penalties, apply_temperature_top_k_top_p_min_p,
                                 compute_logprobs, sample)
from nanovl.sampling_params import SamplingParams


@dataclass
class SamplingRow:
    """What the sampler needs of one request for one step."""

    params: SamplingParams
    seed: int  # this draw's seed, from the request's own RNG (RequestState.next_seed)
    prompt_token_ids: Sequence[int]
    output_token_ids: Sequence[int]
    allowed: torch.Tensor | None = None  # bool [V] grammar mask, None = all allowed


@dataclass
class SamplerOutput:
    token_ids: list[int]
    logprobs: list[TokenLogprob | None]


def _on_device(values, dtype: torch.dtype, dev: torch.device) -> torch.Tensor:
    """A small host list as a device tensor, without waiting for the stream (engine/transfers.py)."""
    return to_device_async(torch.tensor(values, dtype=dtype), dev)


class Sampler:
    """Stateless; `__call__(logits [R, V], rows)` -> SamplerOutput; `draw` leaves the ids on the device."""

    def __call__(self, logits: torch.Tensor, rows: Sequence[SamplingRow]) -> SamplerOutput:
        """Draw one token per row.

        Args:
            logits: [R, V] float32 (last position of each sampling request).
            rows: R SamplingRow records, same order.
        """
        if not rows:
            self._check(logits, rows)
            return SamplerOutput([], [])
        ids, report = self._draw_rows(logits, rows)
        return SamplerOutput(ids.tolist(), self._logprobs(report, ids, [r.params for r in rows]))

    def draw(self, logits: torch.Tensor, rows: Sequence[SamplingRow]) -> torch.Tensor:
        """The same tokens as `__call__`, as a LongTensor [R] on the logits' device; nothing is read
        back, and every host value goes over from pinned memory, so the host never waits for the GPU
        here (the engine's lookahead queues the next decode step on these ids). No logprobs."""
        return self._draw_rows(logits, rows)[0]

    @staticmethod
    def _check(logits: torch.Tensor, rows: Sequence[SamplingRow]) -> None:
        if logits.shape[0] != len(rows):
            raise ValueError(f"{logits.shape[0]} logits rows for {len(rows)} sampling rows")

    def _draw_rows(self, logits: torch.Tensor, rows: Sequence[SamplingRow]) -> tuple[torch.Tensor, torch.Tensor]:
        """(ids [R] on the device, the penalised logits the logprobs report)."""
        self._check(logits, rows)
        x = logits.float()
        dev = x.device
        masked = [i for i, r in enumerate(rows) if r.allowed is not None]
        if masked:
            x = x.clone()  # the masks are written in place; the caller's logits stay as they were
            allowed = to_device_async(torch.stack([rows[i].allowed for i in masked]), dev)
            where = _on_device(masked, torch.long, dev)
            x[where] = x[where].masked_fill(~allowed, float("-inf"))
        ps = [r.params for r in rows]
        if any(p.repetition_penalty != 1.0 for p in ps):
            rep = _on_device([p.repetition_penalty for p in ps], torch.float32, dev)
            zeros = torch.zeros(len(rows), device=dev)
            x = apply_penalties(x, [list(r.prompt_token_ids) + list(r.output_token_ids) for r in rows],
                                rep, zeros, zeros)
        if any(p.presence_penalty or p.frequency_penalty for p in ps):
            x = apply_penalties(x, [r.output_token_ids for r in rows], torch.ones(len(rows), device=dev),
                                _on_device([p.presence_penalty for p in ps], torch.float32, dev),
                                _on_device([p.frequency_penalty for p in ps], torch.float32, dev))
        # greedy rows take the argmax here; only the others pay for the filters and the draw (up to
        # two sorts of the vocabulary and a noise tensor a row, some 30 kernel launches)
        ids = x.argmax(dim=1)
        drawn = [i for i, p in enumerate(ps) if not p.is_greedy]
        if len(drawn) == len(rows):
            ids = self._draw(x, ps, [r.seed for r in rows])
        elif drawn:
            where = _on_device(drawn, torch.long, dev)
            ids[where] = self._draw(x[where], [ps[i] for i in drawn], [rows[i].seed for i in drawn])
        return ids, x

    @staticmethod
    def _draw(x: torch.Tensor, ps: Sequence[SamplingParams], seeds: Sequence[int]) -> torch.Tensor:
        """Filter and draw rows that are not greedy; the knobs travel to the device in one copy, the
        seeds in another."""
        # top_k <= V < 2**24: exact in fp32
        knobs = _on_device([[p.temperature, p.top_k, p.top_p, p.min_p] for p in ps], torch.float32, x.device)
        # a filter no row uses is skipped (None): on the reference path top-k and top-p each sort the
        # whole vocabulary, and in the kernel each costs passes over the row
        top_k = knobs[:, 1].long() if any(p.top_k > 0 for p in ps) else None
        top_p = knobs[:, 2] if any(p.top_p < 1 for p in ps) else None
        min_p = knobs[:, 3] if any(p.min_p > 0 for p in ps) else None
        filtered = apply_temperature_top_k_top_p_min_p(x, knobs[:, 0], top_k, top_p, min_p)
        return sample(filtered, _on_device(seeds, torch.long, x.device))

    @staticmethod
    def _logprobs(logits: torch.Tensor, ids: torch.Tensor,
                  ps: Sequence[SamplingParams]) -> list[TokenLogprob | None]:
        want = [p.logprobs for p in ps]
        if all(w is None for w in want):
            return [None] * len(ps)
        k = max(w or 0 for w in want)
        chosen, top_lp, top_ids = compute_logprobs(logits, ids, k)
        out: list[TokenLogprob | None] = []
        for i, w in enumerate(want):
            if w is None:
                out.append(None)
                continue
            top = list(zip(top_ids[i, :w].tolist(), top_lp[i, :w].tolist()))
            out.append(TokenLogprob(int(ids[i]), float(chosen[i]), top))
        return out
