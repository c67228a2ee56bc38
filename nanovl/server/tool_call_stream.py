"""Tool calls in a streamed chat answer: content passes through as it comes until it may start a
`<TOOLCALL>` block; from there it is held, and at the end parsed into OpenAI tool calls (or, when
it was no well-formed block after all, sent as the content it is). Nothing is lost either way."""
from __future__ import annotations

from nanovl.tool_calls import TOOLCALL_START, ToolCall, parse_tool_calls


def _hold_from(text: str) -> int:
    """Where the part of `text` that may belong to a tool call starts (len(text): nowhere)."""
    at = text.find(TOOLCALL_START)
    if at >= 0:
        return at
    for k in range(len(TOOLCALL_START) - 1, 0, -1):  # a marker cut by the chunk boundary
        if text.endswith(TOOLCALL_START[:k]):
            return len(text) - k
    return len(text)


class ToolCallStream:
    """One choice's content: `feed` each delta and send what it returns; `finish` once at the end."""

    def __init__(self) -> None:
        self.held = ""

    def feed(self, delta: str) -> str:
        text = self.held + delta
        if TOOLCALL_START in self.held:  # inside a block: keep everything until the end
            self.held = text
            return ""
        cut = _hold_from(text)
        self.held = text[cut:]
        return text[:cut]

    def finish(self) -> tuple[str, list[ToolCall]]:
        """(content still to send, the calls): the held text parsed, or released as it is."""
        held, self.held = self.held, ""
        rest, calls = parse_tool_calls(held)
        if not calls:
            return held, []
        return (rest or ""), calls


def tool_call_deltas(calls: list[ToolCall]) -> list[dict]:
    """The `delta.tool_calls` entries of a stream's closing chunk (each call whole, at its index)."""
    return [{"index": k, **call.to_openai()} for k, call in enumerate(calls)]
