"""Scheduler: continuous batching over a fixed pool of state slots (torch-free; keep minimal).

Each `schedule()` admits waiting requests into free slots (first come, first served), puts
every row with exactly one pending token into one batched decode, and spends a prefill budget
of `max_prefill_chunk` tokens on chunks of the rows still prefilling. `update_from_output()`
appends the sampled tokens, applies the stop rules and frees finished slots.
"""
from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

from nanovl.engine.cache_manager import CacheManager
from nanovl.engine.outputs import ScheduledChunk, SchedulerOutput
from nanovl.engine.request import Request, RequestStatus
from nanovl.errors import ContextLengthError, InvalidRequestError, QueueFullError

if TYPE_CHECKING:
    from nanovl.engine.engine import EngineConfig


class Scheduler:
    """Waiting queue + running set over `max_num_seqs` slots.

    Args:
        max_num_seqs: state slots (requests running at once).
        max_model_len: prompt + output tokens per request.
        max_prefill_chunk: prefill tokens per step (and per chunk).
        max_waiting: queued requests beyond which `add_request` raises QueueFullError.
    """

    def __init__(self, *, max_num_seqs: int, max_model_len: int, max_prefill_chunk: int,
                 max_waiting: int) -> None:
        for name, v in (("max_num_seqs", max_num_seqs), ("max_model_len", max_model_len),
                        ("max_prefill_chunk", max_prefill_chunk)):
            if v < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        if max_waiting < 0:
            raise ValueError(f"max_waiting must be >= 0, got {max_waiting}")
        self.max_model_len = max_model_len
        self.max_prefill_chunk = max_prefill_chunk
        self.max_waiting = max_waiting
        self.cache = CacheManager(max_num_seqs)
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.requests: dict[str, Request] = {}

    @classmethod
    def from_config(cls, config: "EngineConfig", max_model_len: int) -> "Scheduler":
        return cls(max_num_seqs=config.max_num_seqs, max_model_len=max_model_len,
                   max_prefill_chunk=config.max_prefill_chunk, max_waiting=config.max_waiting)

    # ------------------------------------------------------------------ queue
    @property
    def num_waiting(self) -> int:
        return len(self.waiting)

    @property
    def num_running(self) -> int:
        return len(self.running)

    def has_unfinished_requests(self) -> bool:
        return bool(self.waiting or self.running)

    def add_request(self, req: Request) -> None:
        """Queue `req`; raises ContextLengthError, QueueFullError or InvalidRequestError."""
        if req.req_id in self.requests:
            raise InvalidRequestError(f"request id {req.req_id!r} is already in use")
        if req.num_prompt_tokens >= self.max_model_len:
            raise ContextLengthError(req.num_prompt_tokens, self.max_model_len,
                                     "no room is left for even one generated token")
        cached = 0 if req.prefix is None else int(req.prefix.num_tokens)
        if not 0 <= cached < req.num_prompt_tokens:
            raise InvalidRequestError(f"request {req.req_id!r}: prefix state covers {cached} tokens "
                                      f"but the prompt has only {req.num_prompt_tokens}")
        if len(self.waiting) >= self.max_waiting:
            raise QueueFullError(f"the waiting queue is full ({self.max_waiting} requests); retry later")
        req.status = RequestStatus.WAITING
        self.waiting.append(req)
        self.requests[req.req_id] = req

    def abort(self, req_id: str) -> bool:
        """Stop `req_id` now and free its slot; False if it is unknown or already finished."""
        req = self.requests.get(req_id)
        if req is None or req.is_finished:
            return False
        self.finish_request(req, RequestStatus.FINISHED_ABORTED)
        return True

    def finish_request(self, req: Request, status: RequestStatus) -> None:
        """End `req` with a finished `status` (stop strings, grammar end, abort, stop rules)."""
        if not status.is_finished:
            raise ValueError(f"{status} is not a finished status")
        if req.status == RequestStatus.WAITING:
            self.waiting.remove(req)
        elif req.status == RequestStatus.RUNNING:
            self.running.remove(req)
            self.cache.free(req.slot)
        req.status = status
        req.finish_time = time.monotonic()
        self.requests.pop(req.req_id, None)

    # --------------------------------------------------------------- schedule
    def schedule(self, *, admit: bool = True) -> SchedulerOutput:
        """Pick this step's work; see the module docstring for the policy. `admit=False` leaves the
        waiting queue alone (the engine's decode lookahead has this step's decode in flight)."""
        out = SchedulerOutput(freed_slots=self.cache.take_released())
        # 1) admit waiting requests while slots are free
        while admit and self.waiting and self.cache.num_free_slots:
            req = self.waiting.popleft()
            req.slot = self.cache.allocate(req.req_id)
            req.status = RequestStatus.RUNNING
            if req.prefix is not None:
                req.num_computed_tokens = req.num_cached_tokens = int(req.prefix.num_tokens)
            self.running.append(req)
            out.new_req_ids.append(req.req_id)
        new = set(out.new_req_ids)
        # 2) one batched decode row for every request with exactly one pending token
        budget = self.max_prefill_chunk
        for req in self.running:
            if req.num_pending_tokens == 1 and not req.is_prefilling and req.req_id not in new:
                out.decode_req_ids.append(req.req_id)
                out.decode_slots.append(req.slot)
                out.decode_token_ids.append(req.output_token_ids[-1])
                continue
            # 3) prefill (or forced-token) chunks, in admission order, within the budget
            if budget <= 0 or req.num_pending_tokens == 0:
                continue
            n = min(req.num_pending_tokens, budget)
            start = req.num_computed_tokens
            out.prefills.append(ScheduledChunk(req.req_id, req.slot, start, req.token_slice(start, n),
                                               samples=start + n == req.num_tokens))
            budget -= n
        return out

    def update_from_output(self, sched: SchedulerOutput,
                           sampled: dict[str, list[int]]) -> list[Request]:
        """Advance counters, append `sampled` ids, apply stop rules; returns the touched requests.

        Args:
            sched: the output of the `schedule()` call that ran.
            sampled: req_id -> new token ids (1 normally; more when tokens are forced).
        """
        now = time.monotonic()
        touched: list[Request] = []
        for req_id, n in sched.num_scheduled_tokens.items():
            req = self.requests.get(req_id)
            if req is None or req.is_finished:
                # aborted while the step ran: nothing to advance
                continue
            req.num_computed_tokens += n
            new_ids = sampled.get(req_id)
            if new_ids:
                if req.first_token_time is None:
                    req.first_token_time = now
                self._append(req, new_ids)
            touched.append(req)
        return touched

    def _append(self, req: Request, new_ids: list[int]) -> None:
        for tok in new_ids:
            req.output_token_ids.append(tok)
            if tok in req.stop_token_ids or (not req.ignore_eos and tok in req.eos_token_ids):
                self.finish_request(req, RequestStatus.FINISHED_STOPPED)
                return
            if req.num_output_tokens >= req.max_tokens or req.num_tokens >= self.max_model_len:
                self.finish_request(req, RequestStatus.FINISHED_LENGTH)
                return
