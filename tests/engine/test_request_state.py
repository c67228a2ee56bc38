"""RequestState with a tokenizer where "</think>" is several plain tokens (no added token):
the grammar must still start right after the thought, and forced ids must never reach it.

Run: pytest tests/engine/test_request_state.py
"""
from __future__ import annotations

import torch

from nanovl.engine.request import Request
from nanovl.engine.request_state import RequestState
from nanovl.sampling_params import SamplingParams


class CharTokenizer:
    """One id per character (ids = code points): "</think>" is 8 ids."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids, *, skip_special_tokens: bool = False) -> str:
        return "".join(chr(i) for i in ids)


class RecordingGrammar:
    """Stands in for a GrammarState: records what it was fed."""

    def __init__(self) -> None:
        self.accepted: list[int] = []

    def is_terminated(self) -> bool:
        return False

    def accept_token(self, tok: int) -> bool:
        self.accepted.append(tok)
        return True

    def allowed_token_mask(self, vocab_size: int) -> torch.Tensor:
        return torch.ones(vocab_size, dtype=torch.bool)


def make_state(**params) -> tuple[RequestState, Request, RecordingGrammar]:
    tok = CharTokenizer()
    req = Request("r", tok.encode("Q: <think>\n"), max_tokens=100)
    st = RequestState.create(req, SamplingParams(**params), tok, thinking=True,
                             grammar_tokenizer=lambda: None)
    st.grammar = RecordingGrammar()
    return st, req, st.grammar


def feed(st: RequestState, req: Request, text: str, *, forced: bool = False) -> None:
    ids = CharTokenizer().encode(text)
    st.accept(ids, forced=forced)
    req.output_token_ids += ids
    st.absorb(req, None)


def test_grammar_starts_after_multi_token_think_end():
    st, req, grammar = make_state()
    feed(st, req, "hmm </thin")
    assert st.allowed_mask(300) is None and grammar.accepted == []
    feed(st, req, "k>")
    assert st.answer_started and st.allowed_mask(300) is not None
    feed(st, req, '{"a": 1}')
    assert CharTokenizer().decode(grammar.accepted) == '{"a": 1}'
    st.finish()
    out = st.output(req)
    assert out.reasoning_content == "hmm" and out.text == '{"a": 1}'


def test_forced_close_starts_the_answer_and_skips_the_grammar():
    st, req, grammar = make_state(thinking_budget=3)
    feed(st, req, "abc")
    forced = st.forced_tokens(req.output_token_ids)
    assert CharTokenizer().decode(forced) == "\n</think>\n"
    st.accept(forced, forced=True)
    req.output_token_ids += forced
    assert st.answer_started and grammar.accepted == []
    assert st.forced_tokens(req.output_token_ids) is None
    feed(st, req, "[]")
    assert CharTokenizer().decode(grammar.accepted) == "[]"
