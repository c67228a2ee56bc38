"""OpenAI compatibility details: GET /v1/models/{id}, JSON bodies whatever their Content-Type,
strict field types (no "5" or true for a count), 400 for options the server does not implement,
and validation messages that name the bad content part.

Run: pytest tests/server/test_server_openai_compat.py
"""
from __future__ import annotations

import json

import openai
import pytest
from serverkit import MODEL_NAME, assert_openai_error

CHAT = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
COMPLETION = {"model": MODEL_NAME, "prompt": "hi", "max_tokens": 2}


def test_retrieve_model(client, http):
    model = client.models.retrieve(MODEL_NAME)
    assert model.id == MODEL_NAME and model.object == "model"
    err = assert_openai_error(http.get("/v1/models/gpt-9"), 404)
    assert err["code"] == "model_not_found" and err["type"] == "not_found_error"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("org/gpt-9")


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_json_body_whatever_the_content_type(http, content_type):
    headers = {"content-type": content_type} if content_type else {}
    resp = http.post("/v1/chat/completions", content=json.dumps(CHAT).encode(), headers=headers)
    assert resp.status_code == 200, resp.text
    resp = http.post("/v1/completions", content=b"prompt=hi", headers=headers)
    assert "not valid JSON" in assert_openai_error(resp, 400)["message"]


WRONG_TYPES = [
    ("/v1/chat/completions", CHAT, "max_tokens", True), ("/v1/chat/completions", CHAT, "max_tokens", "5"),
    ("/v1/chat/completions", CHAT, "max_completion_tokens", "3"), ("/v1/chat/completions", CHAT, "n", True),
    ("/v1/chat/completions", CHAT, "n", "2"), ("/v1/chat/completions", CHAT, "n", 2.0),
    ("/v1/chat/completions", CHAT, "stream", "yes"), ("/v1/chat/completions", CHAT, "stream", 1),
    ("/v1/chat/completions", CHAT, "logprobs", "yes"), ("/v1/completions", COMPLETION, "max_tokens", False),
    ("/v1/completions", COMPLETION, "n", "1"), ("/v1/completions", COMPLETION, "echo", "yes"),
    ("/v1/completions", COMPLETION, "echo", 0), ("/v1/completions", COMPLETION, "logprobs", True),
    ("/v1/completions", COMPLETION, "logprobs", "2"), ("/v1/completions", COMPLETION, "stream", "true"),
]


@pytest.mark.parametrize("path, body, field, value", WRONG_TYPES,
                         ids=[f"{p.split('/')[2]}-{f}={v!r}" for p, _, f, v in WRONG_TYPES])
def test_wrong_types_are_not_coerced(http, path, body, field, value):
    err = assert_openai_error(http.post(path, json={**body, field: value}), 400)
    assert err["param"] == field


UNSUPPORTED = [
    ("/v1/completions", COMPLETION, "suffix", " the end"),
    ("/v1/completions", COMPLETION, "best_of", 3),
]
SUPPORTED = [
    ("/v1/chat/completions", CHAT, "tool_choice", "auto"), ("/v1/chat/completions", CHAT, "tool_choice", "none"),
    ("/v1/completions", COMPLETION, "suffix", ""), ("/v1/completions", COMPLETION, "best_of", 1),
]


@pytest.mark.parametrize("path, body, field, value", UNSUPPORTED, ids=[f"{f}={v!r}" for _, _, f, v in UNSUPPORTED])
def test_unsupported_options_are_400(http, path, body, field, value):
    err = assert_openai_error(http.post(path, json={**body, field: value}), 400)
    assert err["param"] == field and "not supported" in err["message"]


@pytest.mark.parametrize("path, body, field, value", SUPPORTED, ids=[f"{f}={v!r}" for _, _, f, v in SUPPORTED])
def test_supported_values_of_those_options(http, path, body, field, value):
    resp = http.post(path, json={**body, field: value})
    assert resp.status_code == 200, resp.text


BAD_PARTS = [
    ({"type": "audio"}, "messages.0.content.1", "does not match any of the expected tags"),
    ({"type": "text"}, "messages.0.content.1.text", "Field required"),
    ({"type": "image_url", "image_url": "x.png"}, "messages.0.content.1.image_url", "valid dictionary"),
    ({"type": "image_url", "image_url": {"url": 123}}, "messages.0.content.1.image_url.url", "valid string"),
]


@pytest.mark.parametrize("part, param, says", BAD_PARTS, ids=[json.dumps(p) for p, _, _ in BAD_PARTS])
def test_bad_content_part_is_named(http, part, param, says):
    messages = [{"role": "user", "content": [{"type": "text", "text": "look"}, part]}]
    err = assert_openai_error(http.post("/v1/chat/completions", json={**CHAT, "messages": messages}), 400)
    assert err["param"] == param
    assert err["message"].startswith(param + ": ") and says in err["message"]
    assert "more problem" not in err["message"]
