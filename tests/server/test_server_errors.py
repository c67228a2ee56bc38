"""Client mistakes get a 4xx in OpenAI's error shape, never a 500, and the server keeps serving.

Run: pytest tests/server/test_server_errors.py
"""
from __future__ import annotations

import json

import openai
import pytest
from serverkit import MODEL_NAME, assert_openai_error, data_uri, image_part, png_bytes, user


OK_BODY = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}


def post(http, body, path="/v1/chat/completions", **kw):
    if isinstance(body, (bytes, str)):
        return http.post(path, content=body, headers={"content-type": "application/json"}, **kw)
    return http.post(path, json=body, **kw)


def assert_still_serving(http):
    resp = post(http, OK_BODY)
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["role"] == "assistant"


def with_message(*parts, text="what is this?"):
    return {**OK_BODY, "messages": user(*parts, text=text)}


CASES = {
    "corrupt image": (with_message(image_part(data_uri(b"\x89PNG\r\n\x1a\n not really a png"))), "invalid_media"),
    "truncated image": (with_message(image_part(data_uri(png_bytes()[:40]))), "invalid_media"),
    "bad base64": (with_message(image_part("data:image/png;base64,@@@@")), "invalid_media"),
    "text as image": (with_message(image_part(data_uri(b"hello", "text/plain"))), "invalid_media"),
    "unsupported part type": (with_message({"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}),
                              None),
    "unsupported url scheme": (with_message(image_part("ftp://example.com/cat.png")), "invalid_media"),
    "invalid schema": ({**OK_BODY, "response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "minProperties": "many"}}}}, None),
    "json_schema without schema": ({**OK_BODY, "response_format": {"type": "json_schema"}}, None),
    "prompt longer than context": ({**OK_BODY, "messages": [{"role": "user", "content": "word " * 500}]},
                                   "context_length_exceeded"),
    "max_tokens past context": ({**OK_BODY, "max_tokens": 10_000}, "context_length_exceeded"),
    "too many images": (with_message(*[image_part(data_uri(png_bytes()))] * 17), "too_many_media"),
    "local file without a root": (with_message(image_part("/etc/passwd")), "local_media_disabled"),
    "file URL without a root": (with_message(image_part("file:///etc/hostname")), "local_media_disabled"),
    "relative path without a root": (with_message(image_part("../../etc/passwd")), "local_media_disabled"),
    "remote media disabled": (with_message(image_part("http://127.0.0.1:1/x.png")), "remote_media_disabled"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_400(http, name):
    body, code = CASES[name]
    err = assert_openai_error(post(http, body), 400)
    assert err["type"] == "invalid_request_error"
    if code:
        assert err["code"] == code
    assert_still_serving(http)


def test_unknown_model_is_404(client, http):
    err = assert_openai_error(post(http, {**OK_BODY, "model": "gpt-9"}), 404)
    assert err["code"] == "model_not_found" and err["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-9", messages=OK_BODY["messages"])
    assert_openai_error(http.get("/v1/no/such/route"), 404)
    assert_still_serving(http)


def test_errors_raise_openai_exceptions(client):
    # the official client parses our error bodies into its typed exceptions
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "x " * 500}])
    assert info.value.code == "context_length_exceeded"


def test_stream_error_before_headers(http):
    # add-time errors surface as a plain 400, not as a half-open event stream
    resp = post(http, {**OK_BODY, "stream": True, "messages": [{"role": "user", "content": "word " * 500}]})
    assert_openai_error(resp, 400)


MALFORMED = [
    b"", b"{", b"not json", b"[]", b"null", b"42", b'"text"', b"\xff\xfe", b'{"messages": []}',
    {"messages": "hi"}, {"messages": [{"role": "robot", "content": "hi"}]},
    {"messages": [{"content": "hi"}]}, {"messages": [{"role": "user", "content": 7}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]},
    {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": 5}}]}]},
    {"messages": [{"role": "user", "content": [{"text": "no type"}]}]},
    {"messages": [{"role": "user", "content": [None]}]},
    {**OK_BODY, "max_tokens": -1}, {**OK_BODY, "max_tokens": "ten"}, {**OK_BODY, "max_tokens": 1e30},
    {**OK_BODY, "temperature": -1}, {**OK_BODY, "temperature": "hot"}, {**OK_BODY, "top_p": 0},
    {**OK_BODY, "top_p": 7}, {**OK_BODY, "top_k": -5}, {**OK_BODY, "min_p": 2},
    {**OK_BODY, "presence_penalty": 9}, {**OK_BODY, "repetition_penalty": 0},
    {**OK_BODY, "seed": "abc"}, {**OK_BODY, "seed": 2**80}, {**OK_BODY, "seed": -(2**64)},
    {**OK_BODY, "n": 0}, {**OK_BODY, "n": 1000},
    {**OK_BODY, "stop": [""]}, {**OK_BODY, "stop": 5}, {**OK_BODY, "stop_token_ids": [-1]},
    {**OK_BODY, "logprobs": "maybe"}, {**OK_BODY, "logprobs": True, "top_logprobs": 99},
    {**OK_BODY, "top_logprobs": 3}, {**OK_BODY, "response_format": {"type": "xml"}},
    {**OK_BODY, "response_format": "json"}, {**OK_BODY, "chat_template_kwargs": "x"},
    {**OK_BODY, "chat_template_kwargs": {"enable_thinking": "maybe"}}, {**OK_BODY, "thinking_budget": -3},
    {**OK_BODY, "video_pruning_rate": 1.5}, {**OK_BODY, "video_pruning_rate": "half"},
    {**OK_BODY, "stream_options": 3}, {**OK_BODY, "model": ["a"]},
    {**OK_BODY, "messages": [{"role": "user", "content": [{"type": "video_url", "video_url": {"url": "data:,"}}]}]},
    {**OK_BODY, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": data_uri(png_bytes()), "max_num_tiles": "lots"}}]}]},
    {**OK_BODY, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": data_uri(png_bytes()), "max_num_tiles": -4}}]}]},
    {**OK_BODY, "tools": [1]},
    {**OK_BODY, "messages": [{"role": "assistant", "content": "x", "tool_calls": "x"}]},
    {**OK_BODY, "messages": [{"role": "tool", "content": [{"type": "image_url", "image_url": {"url": "data:,"}}]}]},
    # a lone surrogate: valid JSON text, not encodable as UTF-8
    b'{"messages": [{"role": "user", "content": "\\u0000\\ud800"}], "max_tokens": 2}',
]
# odd but harmless: the template copes, so a 200 is as good as a 4xx; never a 5xx
ODD = [
    {**OK_BODY, "tools": [{"type": "function"}]},
    {**OK_BODY, "tools": [{"type": "function", "function": {"name": 3, "parameters": "x"}}]},
    {**OK_BODY, "messages": [{"role": "system", "content": [image_part(data_uri(png_bytes()))]}]},
    {**OK_BODY, "messages": [{"role": "assistant", "content": None}]},
    {**OK_BODY, "logprobs": "yes", "unknown_field": {"a": [1]}},
    {**OK_BODY, "seed": 2**63 - 1, "n": 3, "temperature": 1.0},
    {**OK_BODY, "chat_template_kwargs": {"messages": 1}},
    {**OK_BODY, "chat_template_kwargs": {"add_generation_prompt": "x", "tools": 5}},
]
# lone surrogates outside the messages: wherever they go (template, stop strings, grammar), no 5xx
_HEAD = b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, '
ODD += [_HEAD + tail for tail in (
    b'"tools": [{"type": "function", "function": {"name": "\\ud800"}}]}',
    b'"chat_template_kwargs": {"x": "\\udfff"}}', b'"stop": ["\\ud800"]}',
    b'"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"enum": ["\\ud800"]}}}}')]
MALFORMED_COMPLETIONS = [
    {"prompt": ""}, {"prompt": []}, {"prompt": [[]]}, {"prompt": [-1, 3]}, {"prompt": [10**9]},
    {"prompt": [1.5]}, {"prompt": {"a": 1}}, {"prompt": "hi", "logprobs": 50}, {"prompt": "hi", "echo": "x"},
    {"prompt": "word " * 500}, {"prompt": "hi", "max_tokens": 10**6}, {"prompt": [[1, 2], "mixed"]},
    b'{"prompt": "\\ud800", "max_tokens": 2}',
]


def _ids(items):
    return [f"{i}:{(x if isinstance(x, bytes) else json.dumps(x))[:40]!r}" for i, x in enumerate(items)]


@pytest.mark.parametrize("body", MALFORMED, ids=_ids(MALFORMED))
def test_malformed_chat_bodies_are_4xx(http, body):
    resp = post(http, body)
    assert 400 <= resp.status_code < 500, resp.text
    assert_openai_error(resp, resp.status_code)


@pytest.mark.parametrize("body", ODD, ids=_ids(ODD))
def test_odd_bodies_are_not_5xx(http, body):
    assert post(http, body).status_code < 500
    assert_still_serving(http)


@pytest.mark.parametrize("body", MALFORMED_COMPLETIONS, ids=_ids(MALFORMED_COMPLETIONS))
def test_malformed_completion_bodies_are_4xx(http, body):
    resp = post(http, body if isinstance(body, bytes) else {"model": MODEL_NAME, **body}, path="/v1/completions")
    assert 400 <= resp.status_code < 500, resp.text
    assert_openai_error(resp, resp.status_code)


def test_wrong_method_and_content_type(http):
    assert_openai_error(http.get("/v1/chat/completions"), 405)
    resp = http.post("/v1/chat/completions", content=b"messages=hi",
                     headers={"content-type": "application/x-www-form-urlencoded"})
    assert 400 <= resp.status_code < 500
    assert_still_serving(http)
