"""Errors raised by nanovl's public API, each mapped to one HTTP status by the server.

`InvalidRequestError` (and `ContextLengthError`) -> 400, `QueueFullError` -> 429/503,
`RequestCancelled` -> the client went away (no response). Media problems raise
`nanovl.inputs.errors.MediaError`, itself a `ValueError`, and the server maps those to 400 too.
"""
from __future__ import annotations


class NanovlError(Exception):
    """Base class of every error nanovl raises on purpose."""


class InvalidRequestError(NanovlError, ValueError):
    """The request itself is wrong (bad parameter, bad message shape): HTTP 400."""


class ContextLengthError(InvalidRequestError):
    """The prompt (plus the tokens asked for) does not fit `max_model_len`: HTTP 400."""

    def __init__(self, num_prompt_tokens: int, max_model_len: int, detail: str = "") -> None:
        self.num_prompt_tokens = num_prompt_tokens
        self.max_model_len = max_model_len
        msg = (f"prompt has {num_prompt_tokens} tokens but the model's context is "
               f"max_model_len={max_model_len} tokens")
        super().__init__(msg + (f"; {detail}" if detail else ""))


class QueueFullError(NanovlError):
    """The engine's waiting queue is at `max_waiting`; retry later: HTTP 429/503."""


class RequestCancelled(NanovlError):
    """The request was aborted (client disconnect or `abort(req_id)`) before it finished."""
