"""SamplingParams validation: every bad field raises a ValueError that names it.

Run: pytest tests/text/test_sampling_params.py
"""
from __future__ import annotations

import pytest

from nanovl.sampling_params import SamplingParams


def test_defaults_and_normalisation():
    p = SamplingParams()
    assert (p.temperature, p.top_k, p.top_p, p.max_tokens) == (1.0, 0, 1.0, 256)
    assert p.stop == [] and p.skip_special_tokens and p.response_format is None
    assert not p.is_greedy
    assert SamplingParams(temperature=0).is_greedy and SamplingParams(top_k=1).is_greedy
    assert SamplingParams(stop="END").stop == ["END"]
    assert SamplingParams(top_k=-1).top_k == 0
    assert SamplingParams(response_format={"type": "text"}).response_format is None
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    assert SamplingParams(response_format=fmt).response_format == fmt


@pytest.mark.parametrize("field,value", [
    ("temperature", -0.1), ("temperature", float("nan")), ("temperature", float("inf")), ("top_k", -2), ("top_k", 1.5),
    ("top_p", 0.0), ("top_p", 1.01), ("min_p", -0.1), ("min_p", 1.5),
    ("repetition_penalty", 0.0), ("presence_penalty", 2.5), ("frequency_penalty", -3.0),
    ("seed", "7"), ("max_tokens", 0), ("max_tokens", 2.0), ("stop", ["ok", ""]), ("stop_token_ids", [-1]),
    ("logprobs", -1), ("logprobs", 21), ("enable_thinking", "yes"), ("thinking_budget", -5),
    ("response_format", {"type": "xml"}), ("response_format", {"type": "json_schema"}),
    ("response_format", {"type": "json_schema", "json_schema": {"name": "x"}}),
])
def test_invalid_field_raises_naming_it(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**{field: value})


def test_valid_edges_accepted():
    SamplingParams(temperature=0, top_p=1.0, min_p=1.0, presence_penalty=-2, frequency_penalty=2,
                   max_tokens=1, logprobs=0, thinking_budget=0, seed=0, stop_token_ids=[0, 12],
                   response_format={"type": "json_object"})


@pytest.mark.parametrize("temperature", [1e-39, 1e-38, 1e-20, 9.9e-6])
def test_tiny_temperatures_sample_greedily(temperature):
    # dividing fp32 logits by ~1e-38 overflows them: such a request used to draw noise, the same for any seed
    p = SamplingParams(temperature=temperature, seed=3)
    assert p.temperature == 0.0 and p.is_greedy
    assert SamplingParams(temperature=1e-5).temperature == 1e-5
