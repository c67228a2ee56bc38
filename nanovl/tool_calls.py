"""Tool calls in a reply: the `<TOOLCALL>[{"name": ..., "arguments": ...}, ...]</TOOLCALL>` blocks the
Nemotron chat template asks a model to write (SPEC §chat template, tools block) -> OpenAI tool calls.

A block that is not a JSON list of {name, arguments} objects is left in the text: a malformed call
is shown to the caller as the model wrote it, never dropped.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field

TOOLCALL_START, TOOLCALL_END = "<TOOLCALL>", "</TOOLCALL>"
_BLOCK = re.compile(re.escape(TOOLCALL_START) + r"(.*?)" + re.escape(TOOLCALL_END), re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    """One call: the function's name and its arguments as JSON text (OpenAI's form)."""

    name: str
    arguments: str
    id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:24]}")

    def to_openai(self) -> dict:
        return {"id": self.id, "type": "function", "function": {"name": self.name, "arguments": self.arguments}}


def _calls_of_block(payload: str) -> list[ToolCall] | None:
    """The calls of one block's JSON payload, or None when it is not a list of named calls."""
    try:
        value = json.loads(payload)
    except json.JSONDecodeError:
        return None
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
            return None
        args = item.get("arguments", {})
        if isinstance(args, str):  # the template's example writes them as a string: keep it if it is JSON
            try:
                json.loads(args)
            except json.JSONDecodeError:
                return None
            text = args
        else:
            text = json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(item["name"], text))
    return calls


def parse_tool_calls(text: str) -> tuple[str | None, list[ToolCall]]:
    """Split a reply into (its text outside the well-formed blocks, stripped, None if empty; the calls)."""
    calls: list[ToolCall] = []
    kept: list[str] = []
    end = 0
    for match in _BLOCK.finditer(text):
        block_calls = _calls_of_block(match.group(1))
        if block_calls is None:
            continue  # malformed: stays in the text
        kept.append(text[end:match.start()])
        end = match.end()
        calls += block_calls
    kept.append(text[end:])
    rest = "".join(kept).strip()
    return (rest or None), calls


def may_hold_tool_call(text: str) -> bool:
    """True once `text` holds the opening marker, or ends in a prefix of it: a stream must hold such
    text back until the block closes (or the reply ends) instead of sending it as content."""
    if TOOLCALL_START in text:
        return True
    return any(text.endswith(TOOLCALL_START[:k]) for k in range(1, len(TOOLCALL_START)))
