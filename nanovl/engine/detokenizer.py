"""Incremental detokenisation with stop strings: token ids in, text that is safe to stream out.

Safe means two things: a UTF-8 character split across tokens is held until it is complete, and
text that could still grow into a stop string is held until it cannot. A matched stop string
(and anything after it) never reaches the output.
"""
from __future__ import annotations

from typing import Protocol, Sequence

REPLACEMENT_CHAR = "\ufffd"
# prompt ids kept as decoding context (tokenizers that drop a leading space need a left neighbour)
NUM_CONTEXT_IDS = 5


class _Decoder(Protocol):
    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = False) -> str: ...


class IncrementalDetokenizer:
    """Per-request streaming decoder.

    `add(token_id)` returns the newly safe text (often ""); once a stop string matched,
    `finished` is True, `stop_str` names it and later calls return "". At the end of generation
    (EOS, length) `flush()` releases the held-back text.
    """

    def __init__(self, tokenizer: _Decoder, *, skip_special_tokens: bool = True,
                 stop: Sequence[str] = (), include_stop_str_in_output: bool = False,
                 prompt_ids: Sequence[int] = ()):
        if any(not isinstance(s, str) or not s for s in stop):
            raise ValueError("stop strings must be non-empty strings")
        self.tokenizer = tokenizer
        self.skip_special_tokens = skip_special_tokens
        self.stop = list(stop)
        self.include_stop_str_in_output = include_stop_str_in_output
        self.finished = False
        self.stop_str: str | None = None
        self.token_ids: list[int] = []
        self._ids = [int(i) for i in prompt_ids[-NUM_CONTEXT_IDS:]]
        # ids[prefix_offset:read_offset] decode to text already taken; ids[read_offset:] are pending
        self._prefix_offset = 0
        self._read_offset = len(self._ids)
        self._text = ""
        self._num_emitted = 0

    @property
    def text(self) -> str:
        """Everything streamed out so far."""
        return self._text[:self._num_emitted]

    def add(self, token_id: int) -> str:
        """Take one generated id; return the text that became safe to show."""
        if self.finished:
            return ""
        self.token_ids.append(int(token_id))
        self._ids.append(int(token_id))
        return self._release(self._decode_new(final=False), final=False)

    def flush(self) -> str:
        """Generation ended without a stop string: release everything still held."""
        if self.finished:
            return ""
        out = self._release(self._decode_new(final=True), final=True)
        self.finished = True
        return out

    def _decode_new(self, *, final: bool) -> str:
        window = self._ids[self._prefix_offset:]
        prefix = self._decode(self._ids[self._prefix_offset:self._read_offset])
        full = self._decode(window)
        # a trailing replacement char means the last token ended inside a UTF-8 character
        if len(full) <= len(prefix) or (full.endswith(REPLACEMENT_CHAR) and not final):
            return ""
        self._prefix_offset, self._read_offset = self._read_offset, len(self._ids)
        return full[len(prefix):]

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=self.skip_special_tokens) if ids else ""

    def _release(self, new_text: str, *, final: bool) -> str:
        """Append decoded text, look for stop strings, return what may be shown now."""
        self._text += new_text
        start = self._num_emitted
        # emitted text never holds the beginning of a stop string, so searching from the
        # first held character finds every match, including ones spanning several tokens
        hits = [(idx, s) for s in self.stop if (idx := self._text.find(s, start)) >= 0]
        if hits:
            idx, s = min(hits, key=lambda h: (h[0], -len(h[1])))
            end = idx + len(s) if self.include_stop_str_in_output else idx
            self._text = self._text[:end]
            self.finished, self.stop_str = True, s
            return self._emit_to(end)
        hold = 0 if final else self._partial_stop_len(start)
        return self._emit_to(len(self._text) - hold)

    def _partial_stop_len(self, start: int) -> int:
        """Length of the longest tail of the held text that begins some stop string."""
        tail_len = len(self._text) - start
        best = 0
        for s in self.stop:
            for k in range(min(len(s) - 1, tail_len), best, -1):
                if self._text.endswith(s[:k]):
                    best = k
                    break
        return best

    def _emit_to(self, end: int) -> str:
        out = self._text[self._num_emitted:end]
        self._num_emitted = max(self._num_emitted, end)
        return out
