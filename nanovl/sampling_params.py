"""SamplingParams: how one request samples, stops and formats its output (vLLM names)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

MAX_LOGPROBS = 20
# Temperatures below this sample greedily: dividing fp32 logits by ~1e-38 overflows them to inf
# (and the draw turns to noise), while at 1e-5 the softmax is already argmax to fp32 precision.
GREEDY_BELOW_TEMPERATURE = 1e-5
# "tool_calls" (nanovl's own): the answer must be a <TOOLCALL> block of the given OpenAI `tools`
# (one function when "name" is set), as the server sends for tool_choice "required" or a named one
RESPONSE_FORMATS = ("text", "json_object", "json_schema", "tool_calls")


@dataclass
class SamplingParams:
    """Per-request sampling knobs, validated on construction (ValueError names the field).

    temperature: 0 (or below GREEDY_BELOW_TEMPERATURE) means greedy; top_k: 0 (or -1) means off;
    top_p in (0, 1]; min_p in [0, 1].
    repetition_penalty > 0 (1 = off) divides positive / multiplies negative logits of seen tokens;
    presence_penalty / frequency_penalty in [-2, 2] subtract once / per occurrence.
    stop: strings that end the output (not included unless include_stop_str_in_output);
    stop_token_ids: extra ids that end it; ignore_eos keeps going past end-of-turn.
    logprobs: None, or how many top logprobs to return per token (0 = the chosen token only).
    response_format: None, {"type": "json_object"} or {"type": "json_schema",
        "json_schema": {"name": ..., "schema": {...}}}.
    enable_thinking: None lets /think and /no_think decide; thinking_budget caps reasoning tokens.
    """

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    min_p: float = 0.0
    repetition_penalty: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    max_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)
    include_stop_str_in_output: bool = False
    ignore_eos: bool = False
    logprobs: int | None = None
    response_format: dict[str, Any] | None = None
    enable_thinking: bool | None = None
    thinking_budget: int | None = None
    skip_special_tokens: bool = True

    def __post_init__(self) -> None:
        _check(_is_number(self.temperature) and 0 <= self.temperature < math.inf, "temperature",
               "must be finite and >= 0", self.temperature)
        if self.temperature < GREEDY_BELOW_TEMPERATURE:
            self.temperature = 0.0
        _check(_is_int(self.top_k) and self.top_k >= -1, "top_k", "must be an int >= 0 (0 or -1 = off)",
               self.top_k)
        self.top_k = max(int(self.top_k), 0)
        _check(_is_number(self.top_p) and 0 < self.top_p <= 1, "top_p", "must be in (0, 1]", self.top_p)
        _check(_is_number(self.min_p) and 0 <= self.min_p <= 1, "min_p", "must be in [0, 1]", self.min_p)
        _check(_is_number(self.repetition_penalty) and self.repetition_penalty > 0, "repetition_penalty",
               "must be > 0", self.repetition_penalty)
        for name in ("presence_penalty", "frequency_penalty"):
            value = getattr(self, name)
            _check(_is_number(value) and -2 <= value <= 2, name, "must be in [-2, 2]", value)
        _check(self.seed is None or _is_int(self.seed), "seed", "must be an int or None", self.seed)
        _check(_is_int(self.max_tokens) and self.max_tokens >= 1, "max_tokens", "must be an int >= 1",
               self.max_tokens)
        _check(self.stop is None or isinstance(self.stop, (str, list, tuple)), "stop",
               "must be a string or a list of strings", self.stop)
        self.stop = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        _check(all(isinstance(s, str) and s for s in self.stop), "stop", "must be non-empty strings", self.stop)
        _check(self.stop_token_ids is None or isinstance(self.stop_token_ids, (list, tuple)), "stop_token_ids",
               "must be a list of ints", self.stop_token_ids)
        self.stop_token_ids = list(self.stop_token_ids or [])
        _check(all(_is_int(i) and i >= 0 for i in self.stop_token_ids), "stop_token_ids",
               "must be ints >= 0", self.stop_token_ids)
        _check(self.logprobs is None or (_is_int(self.logprobs) and 0 <= self.logprobs <= MAX_LOGPROBS),
               "logprobs", f"must be None or an int in [0, {MAX_LOGPROBS}]", self.logprobs)
        _check(self.enable_thinking is None or isinstance(self.enable_thinking, bool), "enable_thinking",
               "must be a bool or None", self.enable_thinking)
        _check(self.thinking_budget is None or (_is_int(self.thinking_budget) and self.thinking_budget >= 0),
               "thinking_budget", "must be None or an int >= 0", self.thinking_budget)
        self.response_format = _check_response_format(self.response_format)

    @property
    def is_greedy(self) -> bool:
        """True when sampling reduces to argmax (temperature 0 or top_k 1)."""
        return self.temperature == 0 or self.top_k == 1


def _check(ok: bool, name: str, rule: str, value: Any) -> None:
    if not ok:
        raise ValueError(f"SamplingParams.{name} {rule}, got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_response_format(fmt: dict[str, Any] | None) -> dict[str, Any] | None:
    """Shape check only; the schema itself is checked by nanovl.structured.grammar."""
    if fmt is None:
        return None
    _check(isinstance(fmt, dict) and fmt.get("type") in RESPONSE_FORMATS, "response_format",
           f"must be None or a dict with type in {RESPONSE_FORMATS}", fmt)
    if fmt["type"] == "text":
        return None
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema")
        _check(isinstance(spec, dict) and isinstance(spec.get("schema"), dict), "response_format",
               "of type json_schema needs json_schema.schema (a JSON schema object)", fmt)
    if fmt["type"] == "tool_calls":
        _check(isinstance(fmt.get("tools"), list) and fmt["tools"], "response_format",
               "of type tool_calls needs tools (a non-empty list of OpenAI tools)", fmt)
    return fmt
