"""JSON-constrained decoding: random logits under the grammar mask always give valid JSON.

Run: pytest tests/text/test_grammar_json.py
"""
from __future__ import annotations

import json

import jsonschema
import pytest
import torch

from nanovl.structured.grammar import (
    allocate_bitmask,
    apply_token_bitmask,
    compile_grammar,
    fill_bitmasks,
    make_ll_tokenizer,
    unpack_bitmask,
)
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer

INVOICE = {
    "type": "object",
    "properties": {
        "invoice_id": {"type": "string", "maxLength": 12},
        "status": {"enum": ["paid", "due", "void"]},
        "total": {"type": "number", "minimum": 0, "maximum": 10000},
        "count": {"type": "integer", "minimum": 1, "maximum": 99},
        "customer": {"type": "object", "additionalProperties": False, "required": ["name", "vip"],
                     "properties": {"name": {"type": "string", "maxLength": 16}, "vip": {"type": "boolean"}}},
        "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
            "type": "object", "additionalProperties": False, "required": ["sku", "qty"],
            "properties": {"sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2}$"},
                           "qty": {"type": "integer", "minimum": 1, "maximum": 5}}}},
    },
    "required": ["invoice_id", "status", "total", "customer", "items"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return Tokenizer.from_dir(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


@pytest.fixture(scope="module")
def ll_tok(tok):
    return make_ll_tokenizer(tok)


def _random_generation(grammar, ll_tok, tok, gen, max_steps=3000):
    """Sample from random logits under the mask until EOS; check EOS only appears when complete."""
    state = grammar.new_state(ll_tok)
    out = []
    for _ in range(max_steps):
        allowed = state.allowed_token_mask(tok.vocab_size)
        text = tok.decode(out)
        if allowed[12]:
            json.loads(text)  # EOS (end of turn) is offered only for a complete value
        else:
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)
        logits = torch.randn(tok.vocab_size, generator=gen).masked_fill(~allowed, float("-inf"))
        token = int(torch.multinomial(logits.softmax(0), 1, generator=gen))
        assert state.accept_token(token), state.error
        if token in tok.eos_token_ids:
            assert state.is_terminated()
            return text
        out.append(token)
    raise AssertionError(f"no EOS after {max_steps} steps: {tok.decode(out)[:200]!r}")


def test_random_logit_generations_validate_against_schema(tok, ll_tok):
    grammar = compile_grammar({"type": "json_schema", "json_schema": {"name": "invoice", "schema": INVOICE}})
    gen = torch.Generator().manual_seed(0)
    statuses = set()
    for _ in range(20):
        obj = json.loads(_random_generation(grammar, ll_tok, tok, gen))
        jsonschema.validate(obj, INVOICE)
        statuses.add(obj["status"])
    assert len(statuses) > 1  # the samples really vary


def test_json_object_mode_gives_an_object(tok, ll_tok):
    grammar = compile_grammar({"type": "json_object"})
    gen = torch.Generator().manual_seed(1)
    for _ in range(3):
        assert isinstance(json.loads(_random_generation(grammar, ll_tok, tok, gen)), dict)


def test_schema_property_order_is_kept(tok, ll_tok):
    schema = {"type": "object", "properties": {"zeta": {"const": 1}, "alpha": {"const": 2}},
              "required": ["zeta", "alpha"], "additionalProperties": False}
    text = _random_generation(compile_grammar({"type": "json_schema", "json_schema": {"schema": schema}}),
                              ll_tok, tok, torch.Generator().manual_seed(2))
    assert text == '{"zeta": 1, "alpha": 2}'


@pytest.mark.parametrize("fmt,match", [
    ({"type": "json_schema", "json_schema": {"schema": {"type": "strin"}}}, "invalid JSON schema"),
    ({"type": "json_schema", "json_schema": {"schema": {"type": "string", "format": "nope"}}}, "unsupported"),
    ({"type": "json_schema", "json_schema": {"name": "x"}}, "json_schema.schema"),
    ({"type": "yaml"}, "json_object, json_schema or tool_calls"),
    ("json", "must be a dict"),
])
def test_compile_grammar_rejects_bad_formats(fmt, match):
    with pytest.raises(ValueError, match=match):
        compile_grammar(fmt)


def test_a_schema_nested_too_deeply_is_a_value_error():
    schema: dict = {"type": "string"}
    for _ in range(400):
        schema = {"type": "object", "properties": {"a": schema}}
    with pytest.raises(ValueError, match="nested too deeply"):
        compile_grammar({"type": "json_schema", "json_schema": {"schema": schema}})


def test_bitmask_pack_and_apply():
    bitmask = torch.tensor([[0b101, -1], [0, -(1 << 31)]], dtype=torch.int32)
    allowed = unpack_bitmask(bitmask, 40)
    assert allowed[0].nonzero().flatten().tolist() == [0, 2, *range(32, 40)]
    assert allowed[1].nonzero().flatten().tolist() == []
    assert unpack_bitmask(bitmask, 64)[1].nonzero().flatten().tolist() == [63]
    logits = torch.zeros(2, 70)
    apply_token_bitmask(logits, bitmask)
    assert torch.isfinite(logits[0]).nonzero().flatten().tolist() == [0, 2, *range(32, 64)]
    assert torch.isfinite(logits[1]).nonzero().flatten().tolist() == [63]


def test_fill_bitmasks_batch_and_rollback(tok, ll_tok):
    grammar = compile_grammar({"type": "json_schema", "json_schema": {"schema": INVOICE}})
    state = grammar.new_state(ll_tok)
    first = state.allowed_token_mask()
    assert first.any() and all(tok.decode([i]).startswith("{") for i in first.nonzero().flatten().tolist())
    ids = tok.encode('{"invoice_id": "A1"')
    for i in ids:
        assert state.accept_token(i)
    after = state.allowed_token_mask()
    bitmask = allocate_bitmask(3, tok.vocab_size)
    fill_bitmasks([None, state, None], bitmask)
    rows = unpack_bitmask(bitmask, tok.vocab_size)
    assert rows[0].all() and rows[2].all() and torch.equal(rows[1], after)
    state.rollback(len(ids))
    assert torch.equal(state.allowed_token_mask(), first) and state.num_accepted == 0
    with pytest.raises(ValueError, match="roll back"):
        state.rollback(1)
    assert not state.accept_token(tok.encode("x")[0]) and state.error


def test_padded_model_vocab_is_never_allowed(tok):
    # the model's logits may be wider than the tokenizer; the extra ids must stay masked
    grammar = compile_grammar({"type": "json_object"})
    narrow = grammar.new_state(make_ll_tokenizer(tok))
    wide = grammar.new_state(make_ll_tokenizer(tok, vocab_size=600))
    bitmask = allocate_bitmask(2, 600)
    fill_bitmasks([narrow, wide], bitmask)
    rows = unpack_bitmask(bitmask, 600)
    assert not rows[:, tok.vocab_size:].any()
    assert torch.equal(rows[0], rows[1]) and torch.equal(rows[0, :tok.vocab_size], narrow.allowed_token_mask())


TOOLS = [{"type": "function", "function": {"name": "pick", "parameters": {
    "type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"],
    "additionalProperties": False}}},
    {"type": "function", "function": {"name": "ping"}}]


@pytest.mark.parametrize("name", [None, "pick"])
def test_forced_tool_call_grammar_gives_calls_the_parser_reads(tok, ll_tok, name):
    from nanovl.tool_calls import parse_tool_calls

    fmt = {"type": "tool_calls", "tools": TOOLS, **({"name": name} if name else {})}
    grammar = compile_grammar(fmt)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):
        state, out = grammar.new_state(ll_tok), []
        for _ in range(400):
            allowed = state.allowed_token_mask(tok.vocab_size)
            logits = torch.randn(tok.vocab_size, generator=gen).masked_fill(~allowed, float("-inf"))
            token = int(torch.multinomial(logits.softmax(0), 1, generator=gen))
            assert state.accept_token(token)
            if token in tok.eos_token_ids:
                break
            out.append(token)
        rest, calls = parse_tool_calls(tok.decode(out))
        assert rest is None and 1 <= len(calls) <= 8
        assert all(c.name in ({name} if name else {"pick", "ping"}) for c in calls)


@pytest.mark.parametrize("fmt,match", [
    ({"type": "tool_calls", "tools": []}, "non-empty list"),
    ({"type": "tool_calls", "tools": [{"type": "function"}]}, r"tools\[0\]"),
    ({"type": "tool_calls", "tools": TOOLS, "name": "nope"}, "not among the tools"),
    ({"type": "tool_calls", "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "strin"}}}]},
     "invalid JSON schema"),
])
def test_forced_tool_call_grammar_refuses_bad_tools(fmt, match):
    with pytest.raises(ValueError, match=match):
        compile_grammar(fmt)
