"""Reasoning ("thinking") control: the /think switch, the reasoning/answer split, the budget.

The prompt opens a thought with "<think>\\n" (SPEC Part G), so generated text reads
"reasoning\\n</think>answer"; with thinking off the prompt already holds "<think></think>".
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

THINK_START = "<think>"
THINK_END = "</think>"


def message_text(content: str | Sequence[Mapping[str, Any]] | None) -> str:
    """The text of a message's content: a string, or its text parts joined by "\\n"."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content if isinstance(p, Mapping) and p.get("type") == "text")


def resolve_thinking(messages: Sequence[Mapping[str, Any]], explicit: bool | None = None) -> bool:
    """Whether the reply should reason first.

    An explicit flag wins. Otherwise system and user messages are scanned in order and the last
    one holding "/think" (on) or "/no_think" (off) decides; with neither, thinking is on.
    """
    if explicit is not None:
        return bool(explicit)
    thinking = True
    for msg in messages:
        if msg.get("role") not in ("system", "user"):
            continue
        text = message_text(msg.get("content"))
        # "/no_think" does not contain "/think", so the order of the tests is safe
        if "/think" in text:
            thinking = True
        elif "/no_think" in text:
            thinking = False
    return thinking


def split_reasoning(text: str, *, thinking_enabled: bool) -> tuple[str | None, str]:
    """Split generated text into (reasoning, answer).

    With thinking on, everything before "</think>" is reasoning (a leading "<think>" is dropped)
    and the rest is the answer; a thought that never closed is all reasoning and the answer is "".
    With thinking off the reasoning is None. Both parts are stripped of surrounding whitespace.
    """
    if not thinking_enabled:
        return None, text.strip()
    body = text.lstrip()
    if body.startswith(THINK_START):
        body = body[len(THINK_START):]
    reasoning, closed, answer = body.partition(THINK_END)
    return reasoning.strip(), answer.strip() if closed else ""


class ReasoningStream:
    """Streaming twin of `split_reasoning`: feed text deltas, get (reasoning, answer) deltas.

    The concatenated deltas equal `split_reasoning(full_text)`; text that may still turn into
    "</think>" or into stripped whitespace is held back until it is decided or `finish()`.
    """

    def __init__(self, *, thinking_enabled: bool, raw: bool = False):
        # raw: a completion of a raw prompt (no chat template): no thought to split off, and its
        # text is kept exactly as generated, leading and trailing whitespace included
        self.thinking_enabled = thinking_enabled and not raw
        self.raw = raw
        self._text = ""
        self._sent = ["", ""]

    def feed(self, delta: str) -> tuple[str, str]:
        """Add newly generated text; returns (reasoning_delta, answer_delta)."""
        self._text += delta
        return self._advance(final=False)

    def finish(self) -> tuple[str, str]:
        """End of generation: release whatever was held back."""
        return self._advance(final=True)

    def _advance(self, final: bool) -> tuple[str, str]:
        text = self._text
        if self.raw:
            delta, self._sent[1] = text[len(self._sent[1]):], text
            return "", delta
        if not final:
            text = _drop_partial_tags(text, self.thinking_enabled)
        reasoning, answer = split_reasoning(text, thinking_enabled=self.thinking_enabled)
        # stripping keeps each partial result a prefix of the final one, so deltas never retract
        deltas = []
        for i, new in enumerate((reasoning or "", answer)):
            old = self._sent[i]
            deltas.append(new[len(old):] if new.startswith(old) else "")
            if new.startswith(old):
                self._sent[i] = new
        return deltas[0], deltas[1]


def _drop_partial_tags(text: str, thinking_enabled: bool) -> str:
    """Cut a suffix that could grow into "</think>" (and a lone leading "<think>" prefix)."""
    if not thinking_enabled:
        return text
    head = text.lstrip()
    if len(head) < len(THINK_START) and THINK_START.startswith(head):
        return ""
    if THINK_END in text:
        return text
    for k in range(min(len(THINK_END) - 1, len(text)), 0, -1):
        if THINK_END.startswith(text[-k:]):
            return text[:-k]
    return text


class ThinkingBudget:
    """Caps the number of reasoning tokens of one request by forcing the thought to close.

    Call `forced_tokens(generated_ids)` every step before sampling: None means "sample as usual";
    a list means "append these tokens instead" (the engine may append only the first one and
    ask again next step). At most `max_thinking_tokens` tokens are reasoned before the closing
    sequence starts; a thought the model closes by itself is left alone.
    """

    def __init__(self, max_thinking_tokens: int, end_ids: Sequence[int], *,
                 close_ids: Sequence[int] | None = None):
        """
        Args:
            max_thinking_tokens: the budget N (>= 0).
            end_ids: token ids of "</think>" (one id when it is an added token).
            close_ids: what to force, e.g. the ids of "\\n</think>\\n"; must contain end_ids.
        """
        if max_thinking_tokens < 0:
            raise ValueError(f"thinking_budget must be >= 0, got {max_thinking_tokens}")
        if not end_ids:
            raise ValueError("end_ids (the ids of '</think>') must not be empty")
        self.max_thinking_tokens = int(max_thinking_tokens)
        self.end_ids = list(end_ids)
        self.close_ids = list(close_ids) if close_ids is not None else list(end_ids)
        if _find(self.close_ids, self.end_ids, 0) < 0:
            raise ValueError("close_ids must contain end_ids, or the closed thought goes unseen")
        self._num_scanned = 0
        self._end_at: int | None = None
        self._force_start: int | None = None

    @classmethod
    def from_tokenizer(cls, max_thinking_tokens: int, tokenizer, *,
                       close_text: str = "\n" + THINK_END + "\n") -> "ThinkingBudget":
        """Build from a tokenizer with `encode(text) -> list[int]` (nanovl.tokenizer.Tokenizer).

        close_text must contain "</think>"; its parts are encoded apart so the forced ids always
        hold the ids of "</think>" even where BPE would merge across the tag.
        """
        before, tag, after = close_text.partition(THINK_END)
        if not tag:
            raise ValueError(f"close_text must contain {THINK_END!r}, got {close_text!r}")
        end_ids = tokenizer.encode(THINK_END)
        close_ids = [*tokenizer.encode(before), *end_ids, *tokenizer.encode(after)]
        return cls(max_thinking_tokens, end_ids, close_ids=close_ids)

    @property
    def reasoning_ended(self) -> bool:
        return self._end_at is not None

    @property
    def num_reasoning_tokens(self) -> int | None:
        """Tokens generated before the closing "</think>" (None while the thought is open)."""
        return self._end_at

    def forced_tokens(self, generated_ids: Sequence[int]) -> list[int] | None:
        """Tokens to force now, given every token generated so far for this request."""
        if self._force_start is not None:
            done = list(generated_ids[self._force_start:])
            if len(done) < len(self.close_ids) and done == self.close_ids[:len(done)]:
                return self.close_ids[len(done):]
            self._scan(generated_ids)
            return None
        if self._scan(generated_ids):
            return None
        if len(generated_ids) >= self.max_thinking_tokens:
            self._force_start = len(generated_ids)
            return list(self.close_ids)
        return None

    def _scan(self, ids: Sequence[int]) -> bool:
        """Look for "</think>" in the part of `ids` not seen yet; remember where it starts."""
        if self._end_at is None:
            start = max(0, self._num_scanned - len(self.end_ids) + 1)
            pos = _find(ids, self.end_ids, start)
            self._num_scanned = len(ids)
            if pos >= 0:
                self._end_at = pos if self._force_start is None else self._force_start
        return self._end_at is not None


def _find(seq: Sequence[int], sub: Sequence[int], start: int) -> int:
    n = len(sub)
    for i in range(start, len(seq) - n + 1):
        if seq[i] == sub[0] and list(seq[i:i + n]) == list(sub):
            return i
    return -1
