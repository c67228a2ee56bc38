"""Decode lookahead: launch decode step k+1 before the host has done step k's bookkeeping.

A CUDA-graph decode step keeps the GPU busy for its whole replay, but the engine's host work
between two replays (reading the tokens back, stop rules, detokenizing, outputs, the next
schedule, the graph launch itself) left it idle: on the H200 the engine decoded 145 tok/s at batch 1
where back-to-back replays ran 156. Step k's tokens are drawn on the device from what the host
already knows (masks and penalties follow the tokens up to k-1), so the engine draws them
(`Sampler.draw`), replays step k+1 on them at once, and only then reads them and does step k's
host work while the GPU runs k+1; the next `step()` picks that in-flight result up instead of
running the forward itself, and draws from it with the host state it has just brought up to date.

A request that stops at step k (EOS, a stop string, a finished grammar, an abort) has its row of
step k+1 dropped: its slot holds one step of garbage, and a slot is reset before its next request
uses it. While a step is in flight no new request is admitted (it would need the slots' schedule
to change under the launched step), so an arrival waits at most one decode step. Lookahead is not
started while a waiting request could take a free slot (a full engine with a queue keeps it: a slot
frees unforeseen only when a request ends on a stop token), for a step that ends a request by
length (its step k+1 is known waste), for a step where the thinking budget forces a row's tokens
(that row prefills next), or when a row wants logprobs (reading them back would wait for the step
launched ahead).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nanovl.engine.outputs import SchedulerOutput
from nanovl.engine.transfers import to_device_async


@dataclass
class InFlightDecode:
    """A decode step launched ahead: logits of `req_ids` (rows in that order), not yet synchronised."""

    req_ids: list[str]
    logits: torch.Tensor  # [len(req_ids), V] float32 on the device

    def logits_for(self, sched: SchedulerOutput) -> torch.Tensor:
        """The rows of the schedule that follows; it may only drop requests (those that ended)."""
        if sched.prefills or sched.new_req_ids or not set(sched.decode_req_ids) <= set(self.req_ids):
            raise RuntimeError(f"the schedule after a lookahead step changed its requests: decode "
                               f"{sched.decode_req_ids}, {len(sched.prefills)} prefill chunk(s); "
                               f"launched for {self.req_ids}")
        if sched.decode_req_ids == self.req_ids:
            return self.logits
        row = {req_id: i for i, req_id in enumerate(self.req_ids)}
        idx = to_device_async(torch.tensor([row[r] for r in sched.decode_req_ids]), self.logits.device)
        return self.logits.index_select(0, idx)
