"""Tool calls through the server: an answer's <TOOLCALL> blocks become `tool_calls` (JSON and SSE) when
the request offered tools, with finish_reason "tool_calls"; without tools, or with tool_choice "none",
the text comes back as written. The tiny test model never writes a call, so these tests script the
engine's outputs (the real model path is covered by the other server tests).

Run: pytest tests/server/test_server_tool_calls.py
"""
from __future__ import annotations

import json

import pytest
from serverkit import MODEL_NAME

from nanovl.engine.outputs import RequestOutput
from nanovl.server import openai_routes

TOOLS = [{"type": "function", "function": {"name": "weather", "description": "weather of a city",
                                           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]
# the answer in pieces that cut the opening marker across two chunks
PIECES = ["Checking. <TOO", 'LCALL>[{"name": "weather", ', '"arguments": {"city": "Oslo"}}]</TOOLCALL>']


class ScriptedChoices:
    """Stands in for server.choices.Choices: every choice streams PIECES, then finishes with "stop"."""

    def __init__(self, n: int) -> None:
        self.n = n

    @classmethod
    async def open(cls, engine, jobs):
        return cls(len(jobs))

    def __len__(self) -> int:
        return self.n

    def _outputs(self, i: int) -> list[RequestOutput]:
        outs, text = [], ""
        for k, piece in enumerate(PIECES):
            text += piece
            last = k == len(PIECES) - 1
            outs.append(RequestOutput(req_id=f"r{i}", text=text, delta=piece, finished=last,
                                      finish_reason="stop" if last else None, num_prompt_tokens=5,
                                      num_generated_tokens=k + 1))
        return outs

    async def stream(self):
        for k in range(len(PIECES)):
            for i in range(self.n):
                yield i, self._outputs(i)[k]

    async def finals(self):
        return [self._outputs(i)[-1] for i in range(self.n)]


@pytest.fixture(scope="module")
def server(start_server):
    """A longer context than the default server's: the tools block of the prompt alone is ~500 tokens
    of the test tokenizer."""
    return start_server(max_num_seqs=4, max_model_len=2048)


@pytest.fixture
def scripted(monkeypatch):
    monkeypatch.setattr(openai_routes, "Choices", ScriptedChoices)


def _chat(http, **extra):
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "weather in Oslo?"}], "max_tokens": 20,
            **extra}
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    return resp


def test_calls_in_a_json_answer(http, scripted):
    choice = _chat(http, tools=TOOLS, n=2).json()["choices"][1]
    assert choice["finish_reason"] == "tool_calls"
    msg = choice["message"]
    assert msg["content"] == "Checking."
    [call] = msg["tool_calls"]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"]["name"] == "weather" and json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


def test_calls_in_a_streamed_answer(http, scripted):
    resp = http.post("/v1/chat/completions", json={
        "model": MODEL_NAME, "messages": [{"role": "user", "content": "weather?"}], "tools": TOOLS, "stream": True})
    chunks = [json.loads(line[6:]) for line in resp.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks]
    content = "".join(d.get("content") or "" for d in deltas)
    calls = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert content == "Checking. "  # the marker cut across chunks was held back, never sent as text
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["function"]["name"] == "weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"city": "Oslo"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("extra", [{}, {"tools": TOOLS, "tool_choice": "none"}], ids=["no-tools", "choice-none"])
def test_without_tools_the_text_is_returned_as_written(http, scripted, extra):
    choice = _chat(http, **extra).json()["choices"][0]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert choice["message"]["content"] == "".join(PIECES)


def test_the_official_client_reads_the_calls(client, scripted):
    reply = client.chat.completions.create(model=MODEL_NAME, messages=[{"role": "user", "content": "weather?"}],
                                           tools=TOOLS, max_tokens=20)
    call = reply.choices[0].message.tool_calls[0]
    assert reply.choices[0].finish_reason == "tool_calls" and call.function.name == "weather"


def test_real_answers_with_tools_offered_keep_their_text(http):
    # the real model path (unscripted): the tiny model writes no call, so the streamed text, held back
    # wherever it might start a marker, must still add up to the whole non-streamed answer
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "tools": TOOLS,
            "max_tokens": 24, "temperature": 0, "ignore_eos": True,
            "chat_template_kwargs": {"enable_thinking": False}}
    whole = http.post("/v1/chat/completions", json=body).json()["choices"][0]
    resp = http.post("/v1/chat/completions", json={**body, "stream": True})
    chunks = [json.loads(line[6:]) for line in resp.text.splitlines()
              if line.startswith("data: ") and line != "data: [DONE]"]
    streamed = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert whole["message"]["content"] and streamed == whole["message"]["content"]
    assert whole["finish_reason"] == "length" and "tool_calls" not in whole["message"]


DIGIT_TOOLS = [{"type": "function", "function": {"name": "pick", "parameters": {
    "type": "object", "properties": {"n": {"type": "integer", "minimum": 0, "maximum": 9}}, "required": ["n"],
    "additionalProperties": False}}},
    {"type": "function", "function": {"name": "stop", "parameters": {
        "type": "object", "properties": {}, "additionalProperties": False}}}]


@pytest.mark.parametrize("choice,names", [("required", {"pick", "stop"}),
                                          ({"type": "function", "function": {"name": "pick"}}, {"pick"})],
                         ids=["required", "named"])
def test_a_forced_tool_call_comes_back_as_calls(http, choice, names):
    # the real (tiny, untrained for tools) model: the grammar alone makes its answer a valid call list
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "pick a digit"}], "tools": DIGIT_TOOLS,
            "tool_choice": choice, "max_tokens": 400, "temperature": 0,
            "chat_template_kwargs": {"enable_thinking": False}}
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200, resp.text
    choice_out = resp.json()["choices"][0]
    assert choice_out["finish_reason"] == "tool_calls", choice_out
    calls = choice_out["message"]["tool_calls"]
    assert calls and {c["function"]["name"] for c in calls} <= names
    for call in calls:
        args = json.loads(call["function"]["arguments"])
        assert args == {} if call["function"]["name"] == "stop" else 0 <= args["n"] <= 9


@pytest.mark.parametrize("extra,match", [
    ({"tool_choice": "required", "tools": None}, "offers no tools"),
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "not among the tools"),
    ({"tool_choice": "sometimes"}, "tool_choice must be"),
    ({"tool_choice": "required", "response_format": {"type": "json_object"}}, "cannot both"),
], ids=["no-tools", "unknown-name", "bad-value", "with-response-format"])
def test_a_forced_tool_call_that_cannot_be_honoured_is_400(http, extra, match):
    body = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "x"}], "tools": DIGIT_TOOLS,
            "max_tokens": 5, **extra}
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400 and match in resp.json()["error"]["message"], resp.text
    assert resp.json()["error"]["param"] == "tool_choice"
