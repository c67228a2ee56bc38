"""Structured output: a random tiny model constrained by a JSON schema always yields valid JSON.

Run: pytest tests/engine/test_engine_structured.py
"""
from __future__ import annotations

import json

import jsonschema
import pytest

import nanovl
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.errors import InvalidRequestError
from nanovl.llm import LLM
from nanovl.sampling_params import SamplingParams
from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "kind": {"type": "string", "enum": ["cat", "dog", "bird"]},
        "age": {"type": "integer", "minimum": 0, "maximum": 120},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": 6}, "maxItems": 3},
        "visits": {
            "type": "array", "minItems": 1, "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {"vet": {"type": "string", "enum": ["north", "south"]},
                               "cost": {"type": "number", "minimum": 10, "maximum": 99.5}},
                "required": ["vet", "cost"],
                "additionalProperties": False,
            },
        },
        "owner": {
            "type": "object",
            "properties": {"id": {"type": "integer", "minimum": 1, "maximum": 999}, "vip": {"type": "boolean"}},
            "required": ["id", "vip"],
            "additionalProperties": False,
        },
    },
    "required": ["name", "kind", "age", "score", "tags", "visits", "owner"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "pet", "schema": SCHEMA}}


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_structured")
    tok_dir = build_tiny_tokenizer(root / "tok")
    ckpt = write_random_vl_checkpoint(root / "ckpt", tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})
    engine = LLMEngine(EngineConfig(model=str(ckpt), max_num_seqs=8), model=nanovl.load_model(ckpt),
                       tokenizer=Tokenizer.from_dir(ckpt))
    return LLM(engine=engine)


def test_twenty_schema_generations_validate(llm):
    conv = [{"role": "user", "content": "give me a pet as json"}]
    params = [SamplingParams(temperature=1.0, seed=s, max_tokens=300, response_format=FORMAT,
                             enable_thinking=False) for s in range(20)]
    outs = llm.chat([conv] * 20, params)
    values = []
    for out in outs:
        assert out.finish_reason == "stop", out.text
        values.append(json.loads(out.text))
        jsonschema.validate(values[-1], SCHEMA)
    assert len({o.text for o in outs}) > 10, "seeds should give different objects"
    # the random model explores the enums and the array lengths, not one fixed answer
    assert len({v["kind"] for v in values}) > 1 and len({len(v["visits"]) for v in values}) == 2
    unconstrained = llm.chat(conv, SamplingParams(temperature=1.0, seed=0, max_tokens=60, enable_thinking=False))[0]
    with pytest.raises(ValueError):
        jsonschema.validate(json.loads(unconstrained.text), SCHEMA)


def test_grammar_starts_after_thinking(llm):
    conv = [{"role": "user", "content": "think, then answer"}]
    params = SamplingParams(temperature=0.7, seed=5, max_tokens=300, response_format={"type": "json_object"},
                            thinking_budget=5)
    out = llm.chat(conv, params)[0]
    assert out.finish_reason == "stop"
    assert out.reasoning_content
    assert isinstance(json.loads(out.text), dict)


def test_bad_schema_is_a_client_error(llm):
    bad = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "minProperties": "x"}}}
    with pytest.raises(InvalidRequestError, match="response_format"):
        llm.chat([{"role": "user", "content": "hi"}], SamplingParams(response_format=bad))
    assert not llm.engine.has_unfinished_requests()
