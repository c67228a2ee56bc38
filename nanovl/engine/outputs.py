"""Records passed between engine layers: SchedulerOutput, ModelRunnerOutput, RequestOutput.

Torch-free: logits ride in ModelRunnerOutput as an opaque tensor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScheduledChunk:
    """A run of known tokens fed to one request's state in one forward (prefill or forced ids).

    `samples` is True when the chunk reaches the end of the request's known tokens, so the
    logits of its last position pick the next token.
    """

    req_id: str
    slot: int
    start: int
    token_ids: list[int]
    samples: bool


@dataclass
class SchedulerOutput:
    """What one engine step runs: prefill chunks (one forward each) plus one batched decode.

    Attributes:
        prefills: chunks of 1+ tokens, run request by request.
        decode_req_ids / decode_slots / decode_token_ids: rows that feed exactly one token
            (the last sampled one) and sample the next; run as one batch.
        new_req_ids: requests given a slot this step (the runner sets up their state:
            fresh, or restored from a prefix snapshot, and encodes their media).
        freed_slots: slots released since the previous step (finished or aborted requests).
    """

    prefills: list[ScheduledChunk] = field(default_factory=list)
    decode_req_ids: list[str] = field(default_factory=list)
    decode_slots: list[int] = field(default_factory=list)
    decode_token_ids: list[int] = field(default_factory=list)
    new_req_ids: list[str] = field(default_factory=list)
    freed_slots: list[int] = field(default_factory=list)

    @property
    def num_scheduled_tokens(self) -> dict[str, int]:
        out = {c.req_id: len(c.token_ids) for c in self.prefills}
        out.update({r: 1 for r in self.decode_req_ids})
        return out

    @property
    def total_num_scheduled_tokens(self) -> int:
        return sum(len(c.token_ids) for c in self.prefills) + len(self.decode_req_ids)

    @property
    def sampling_req_ids(self) -> list[str]:
        """Requests that get a new token this step, in logits-row order (prefills, then decode)."""
        return [c.req_id for c in self.prefills if c.samples] + list(self.decode_req_ids)

    @property
    def is_empty(self) -> bool:
        return not self.prefills and not self.decode_req_ids


@dataclass
class ModelRunnerOutput:
    """Logits for the requests that sample this step.

    Attributes:
        req_ids: row order of `logits` (== SchedulerOutput.sampling_req_ids).
        logits: [R, V] float tensor (last position of each sampling row).
        prompt_updates: final prompt ids of requests whose media were encoded this step.
    """

    req_ids: list[str]
    logits: Any
    prompt_updates: dict[str, list[int]] = field(default_factory=dict)


@dataclass
class TokenLogprob:
    """Log-probability of one generated token and the top alternatives."""

    token_id: int
    logprob: float
    top: list[tuple[int, float]] = field(default_factory=list)


@dataclass
class RequestMetrics:
    """Timings (seconds, time.monotonic) and work counters of one request."""

    arrival_time: float
    first_token_time: float | None = None
    finish_time: float | None = None
    num_cached_prompt_tokens: int = 0

    @property
    def ttft(self) -> float | None:
        return None if self.first_token_time is None else self.first_token_time - self.arrival_time

    @property
    def e2e_latency(self) -> float | None:
        return None if self.finish_time is None else self.finish_time - self.arrival_time


@dataclass
class RequestOutput:
    """A request's output so far; streaming yields one per step with the new text in `delta`.

    `text` is the answer (reasoning removed), `reasoning_content` the thinking text (None
    when thinking is off); `delta` / `delta_reasoning` hold what was added since the last
    output; `token_ids` are all generated ids.
    """

    req_id: str
    text: str = ""
    delta: str = ""
    reasoning_content: str | None = None
    delta_reasoning: str = ""
    token_ids: list[int] = field(default_factory=list)
    finished: bool = False
    finish_reason: str | None = None
    num_prompt_tokens: int = 0
    num_generated_tokens: int = 0
    logprobs: list[TokenLogprob] | None = None
    metrics: RequestMetrics | None = None

    @property
    def num_cached_tokens(self) -> int:
        return 0 if self.metrics is None else self.metrics.num_cached_prompt_tokens
