"""Constrained JSON output: response_format -> llguidance grammar -> per-request token masks.

`compile_grammar` checks the schema once per request; `GrammarState` follows the tokens the
request produces and says which ids may come next. Masks are packed bitmasks (int32 [B, ceil(V/32)],
bit j of word w = token 32*w + j) that `fill_bitmasks` fills on the CPU during the forward and
`apply_token_bitmask` applies to the logits right before sampling. End-of-turn ids count as EOS:
they are allowed only once the JSON value is complete.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import jsonschema
import llguidance
import torch

from nanovl.tool_calls import TOOLCALL_END, TOOLCALL_START

# one JSON line in json.dumps style; unbounded whitespace lets weak models loop on blanks.
# a schema's own "x-guidance" options override these.
JSON_OPTIONS = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}


@dataclass(frozen=True)
class Grammar:
    """A checked grammar, shared by every request with the same response_format."""

    spec: str
    schema: dict[str, Any]

    def new_state(self, ll_tokenizer: llguidance.LLTokenizer) -> "GrammarState":
        return GrammarState(self, ll_tokenizer)


def compile_grammar(response_format: Mapping[str, Any]) -> Grammar:
    """{"type": "json_object"}, {"type": "json_schema", "json_schema": {"schema": {...}}} or
    {"type": "tool_calls", "tools": [OpenAI tools], "name": optional} -> Grammar.

    Raises ValueError with the reason when the schema is invalid or uses unsupported keywords.
    """
    if not isinstance(response_format, Mapping):
        raise ValueError(f"response_format must be a dict, got {type(response_format).__name__}")
    kind = response_format.get("type")
    if kind == "json_object":
        schema: Any = {"type": "object"}
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, Mapping) else None
        if not isinstance(schema, Mapping):
            raise ValueError("response_format json_schema needs json_schema.schema (a JSON object)")
    elif kind == "tool_calls":
        return _compile_tool_calls(json.dumps(tool_calls_schema(response_format.get("tools"),
                                                                response_format.get("name"))))
    else:
        raise ValueError(f"response_format type must be json_object, json_schema or tool_calls, got {kind!r}")
    # keep the key order: the grammar emits properties in the order the schema lists them
    return _compile_schema(json.dumps(schema))


# calls one forced <TOOLCALL> block may hold: a weak model can otherwise append calls until max_tokens
MAX_FORCED_CALLS = 8


def tool_calls_schema(tools: Any, name: str | None = None) -> dict[str, Any]:
    """The JSON schema of a <TOOLCALL> block's list: one or more {"name", "arguments"} calls of the
    offered OpenAI `tools` (only `name` when given), each function's arguments by its `parameters`."""
    if not isinstance(tools, list) or not tools:
        raise ValueError("forcing a tool call needs the request's tools (a non-empty list)")
    calls = []
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise ValueError(f"tools[{i}] must be {{'type': 'function', 'function': {{'name': ...}}}}")
        if name is not None and fn["name"] != name:
            continue
        params = fn.get("parameters") or {"type": "object"}
        calls.append({"type": "object", "properties": {"name": {"const": fn["name"]}, "arguments": params},
                      "required": ["name", "arguments"], "additionalProperties": False})
    if not calls:
        raise ValueError(f"tool_choice names the function {name!r}, which is not among the tools")
    return {"type": "array", "minItems": 1, "maxItems": MAX_FORCED_CALLS,
            "items": calls[0] if len(calls) == 1 else {"anyOf": calls}}


@functools.lru_cache(maxsize=64)
def _compile_tool_calls(schema_json: str) -> Grammar:
    """`<TOOLCALL>` + a JSON list valid against the schema + `</TOOLCALL>`: the format the chat
    template teaches (nanovl/tool_calls.py parses it back)."""
    schema = json.loads(schema_json)
    _compile_schema(schema_json)  # the same schema checks (and errors) as response_format's
    inner = {**schema, "x-guidance": JSON_OPTIONS}
    spec = llguidance.LLMatcher.grammar_from_lark(
        f'start: "{TOOLCALL_START}" calls "{TOOLCALL_END}"\ncalls: %json {json.dumps(inner)}')
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(spec)
    if is_error:
        raise ValueError(f"unsupported tool parameters schema: {'; '.join(messages)}")
    return Grammar(spec=spec, schema=schema)


@functools.lru_cache(maxsize=64)
def _compile_schema(schema_json: str) -> Grammar:
    schema = json.loads(schema_json)
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        raise ValueError(f"invalid JSON schema: {err.message}") from err
    except RecursionError:
        raise ValueError("invalid JSON schema: nested too deeply") from None
    spec = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=JSON_OPTIONS)
    is_error, messages = llguidance.LLMatcher.validate_grammar_with_warnings(spec)
    if is_error:
        raise ValueError(f"unsupported JSON schema: {'; '.join(messages)}")
    return Grammar(spec=spec, schema=schema)


def make_ll_tokenizer(tokenizer, *, vocab_size: int | None = None) -> llguidance.LLTokenizer:
    """llguidance's view of a nanovl Tokenizer (costly: build once per model).

    Args:
        tokenizer: nanovl.tokenizer.Tokenizer (needs `to_json()` and `eos_token_ids`).
        vocab_size: the model's logits width when padded beyond the tokenizer; the extra ids
            are never allowed.
    """
    if not tokenizer.eos_token_ids:
        raise ValueError("the tokenizer has no EOS / end-of-turn id, so a grammar could never end")
    return llguidance.LLTokenizer(tokenizer.to_json(), n_vocab=vocab_size, eos_token=list(tokenizer.eos_token_ids))


class GrammarState:
    """Matcher state of one request: which tokens may come next, and which came."""

    def __init__(self, grammar: Grammar, ll_tokenizer: llguidance.LLTokenizer):
        self.grammar = grammar
        self.vocab_size = ll_tokenizer.vocab_size
        self.matcher = llguidance.LLMatcher(ll_tokenizer, grammar.spec, log_level=0)
        if self.matcher.is_error():
            raise ValueError(f"grammar failed to start: {self.matcher.get_error()}")
        self.num_accepted = 0

    def fill_bitmask(self, bitmask: torch.Tensor, row: int = 0) -> None:
        """Write the allowed-next-token bits into `bitmask[row]` (int32 [B, ceil(V/32)], CPU)."""
        _check_bitmask(bitmask)
        num_words = (self.vocab_size + 31) // 32
        # llguidance wants a row of exactly its own width; a wider row (padded model vocab)
        # gets the mask in front and "disallowed" after it
        direct = bitmask.shape[1] == num_words
        target = bitmask[row] if direct else torch.empty(num_words, dtype=torch.int32)
        self.matcher.unsafe_compute_mask_ptr(target.data_ptr(), num_words * 4)
        if not direct:
            width = min(num_words, bitmask.shape[1])
            bitmask[row].zero_()
            bitmask[row, :width] = target[:width]

    def allowed_token_mask(self, vocab_size: int | None = None) -> torch.Tensor:
        """The next-token mask unpacked: bool [vocab_size] (default: the tokenizer's size)."""
        vocab_size = self.vocab_size if vocab_size is None else vocab_size
        bitmask = allocate_bitmask(1, vocab_size)
        self.fill_bitmask(bitmask)
        return unpack_bitmask(bitmask, vocab_size)[0]

    def accept_token(self, token_id: int) -> bool:
        """Advance by one sampled token; False (and a sticky error) when the grammar rejects it."""
        ok = self.matcher.consume_token(int(token_id))
        self.num_accepted += int(ok)
        return ok

    def is_terminated(self) -> bool:
        """True once EOS was accepted or nothing but EOS can follow."""
        return self.matcher.is_stopped()

    def is_accepting(self) -> bool:
        """True when the output so far is a complete value (EOS allowed)."""
        return self.matcher.is_accepting()

    @property
    def error(self) -> str:
        return self.matcher.get_error()

    def rollback(self, num_tokens: int) -> None:
        """Undo the last `num_tokens` accepted tokens (speculative decoding, preemption)."""
        if not 0 <= num_tokens <= self.num_accepted:
            raise ValueError(f"can roll back 0..{self.num_accepted} tokens, got {num_tokens}")
        if not self.matcher.rollback(num_tokens):
            raise ValueError(f"rollback failed: {self.matcher.get_error()}")
        self.num_accepted -= num_tokens


def allocate_bitmask(batch_size: int, vocab_size: int) -> torch.Tensor:
    """All-allowed packed mask: int32 [batch_size, ceil(vocab_size / 32)] of -1 (all bits set)."""
    return torch.full((batch_size, (vocab_size + 31) // 32), -1, dtype=torch.int32)


def fill_bitmasks(states: Sequence[GrammarState | None], bitmask: torch.Tensor) -> None:
    """Fill row i from states[i] (in parallel threads); rows whose state is None allow all."""
    _check_bitmask(bitmask)
    if bitmask.shape[0] < len(states):
        raise ValueError(f"bitmask has {bitmask.shape[0]} rows for {len(states)} states")
    bitmask.fill_(-1)
    jobs = [(s.matcher, i) for i, s in enumerate(states) if s is not None]
    if any((s.vocab_size + 31) // 32 != bitmask.shape[1] for s in states if s is not None):
        for row, state in enumerate(states):
            if state is not None:
                state.fill_bitmask(bitmask, row)
    elif jobs:
        row_bytes = bitmask.shape[1] * bitmask.element_size()
        _executor().unsafe_compute_mask_ptr(jobs, bitmask.data_ptr(), row_bytes, bitmask.shape[0])


def unpack_bitmask(bitmask: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """int32 [B, W] packed -> bool [B, vocab_size]; ids past 32*W are disallowed."""
    shifts = torch.arange(32, dtype=torch.int32, device=bitmask.device)
    bits = ((bitmask.unsqueeze(-1) >> shifts) & 1).bool().reshape(bitmask.shape[0], -1)  # [B, 32W]
    if bits.shape[1] < vocab_size:
        bits = torch.nn.functional.pad(bits, (0, vocab_size - bits.shape[1]), value=False)
    return bits[:, :vocab_size]


def apply_token_bitmask(logits: torch.Tensor, bitmask: torch.Tensor) -> torch.Tensor:
    """Set disallowed logits to -inf in place. logits: [B, V]; bitmask: int32 [B, W]. Returns logits."""
    if logits.shape[0] != bitmask.shape[0]:
        raise ValueError(f"batch mismatch: logits {logits.shape[0]} rows, bitmask {bitmask.shape[0]}")
    allowed = unpack_bitmask(bitmask.to(logits.device), logits.shape[1])
    return logits.masked_fill_(~allowed, float("-inf"))


def _check_bitmask(bitmask: torch.Tensor) -> None:
    # llguidance writes through a raw pointer: the buffer must be CPU, int32 and contiguous
    if bitmask.dtype != torch.int32 or bitmask.device.type != "cpu" or bitmask.dim() != 2 \
            or not bitmask.is_contiguous():
        raise ValueError(f"bitmask must be a contiguous 2-D int32 CPU tensor, got {bitmask.dtype} "
                         f"{tuple(bitmask.shape)} on {bitmask.device}")


@functools.lru_cache(maxsize=1)
def _executor() -> llguidance.LLExecutor:
    return llguidance.LLExecutor()
