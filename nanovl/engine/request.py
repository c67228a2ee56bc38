"""Request: one generation's token ids, counters and status, as the scheduler sees it (torch-free).

Token accounting follows vLLM: `all_token_ids = prompt + output`; `num_computed_tokens` of them
are already in the model state. A step feeds `all_token_ids[num_computed_tokens:]` (in chunks)
and samples a new token only when that reaches the end of `all_token_ids`.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import Any


class RequestStatus(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    FINISHED_STOPPED = "stop"
    FINISHED_LENGTH = "length"
    FINISHED_ABORTED = "abort"

    @property
    def is_finished(self) -> bool:
        return self in (RequestStatus.FINISHED_STOPPED, RequestStatus.FINISHED_LENGTH,
                        RequestStatus.FINISHED_ABORTED)


@dataclass
class Request:
    """One request. Media and prefix state ride along as opaque payloads for the model runner.

    Args:
        req_id: unique id.
        prompt_token_ids: prompt ids; for media prompts the runner rewrites them once after
            encoding (same length: EVS moves tokens between frames but keeps the total).
        max_tokens: most tokens to generate.
        eos_token_ids: ids that end the request (ignored when `ignore_eos`).
        stop_token_ids: extra ids that end the request (always honoured).
        mm_input: `nanovl.processor.MultiModalInput` or None.
        prefix: a `PrefixHandle` whose saved state covers `prefix.num_tokens` prompt tokens.
    """

    req_id: str
    prompt_token_ids: list[int]
    max_tokens: int = 16
    eos_token_ids: frozenset[int] = frozenset()
    stop_token_ids: frozenset[int] = frozenset()
    ignore_eos: bool = False
    mm_input: Any = None
    prefix: Any = None
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    num_cached_tokens: int = 0
    status: RequestStatus = RequestStatus.WAITING
    slot: int | None = None
    arrival_time: float = field(default_factory=time.monotonic)
    first_token_time: float | None = None
    finish_time: float | None = None

    def __post_init__(self) -> None:
        if not self.prompt_token_ids:
            raise ValueError(f"request {self.req_id!r}: the prompt is empty")
        if self.max_tokens < 1:
            raise ValueError(f"request {self.req_id!r}: max_tokens must be >= 1, got {self.max_tokens}")

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def num_output_tokens(self) -> int:
        return len(self.output_token_ids)

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    @property
    def num_pending_tokens(self) -> int:
        """Tokens known but not yet fed to the model (1 for a decoding row)."""
        return self.num_tokens - self.num_computed_tokens

    @property
    def is_prefilling(self) -> bool:
        return self.num_computed_tokens < self.num_prompt_tokens

    @property
    def is_finished(self) -> bool:
        return self.status.is_finished

    @property
    def finish_reason(self) -> str | None:
        return self.status.value if self.status.is_finished else None

    def token_slice(self, start: int, num: int) -> list[int]:
        """Ids at positions [start, start+num) of prompt + output."""
        n_prompt = len(self.prompt_token_ids)
        if start + num <= n_prompt:
            return self.prompt_token_ids[start:start + num]
        return self.all_token_ids[start:start + num]
