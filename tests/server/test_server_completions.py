"""/v1/completions details: logprobs text_offset (streamed == non-streamed, skipped special tokens
take no room), context errors naming `prompt`, over-long texts refused before tokenizing, and
tokenizing off the event loop.

Run: pytest tests/server/test_server_completions.py
"""
from __future__ import annotations

import json
import threading
import time

import pytest
from serverkit import MAX_MODEL_LEN, MODEL_NAME, assert_openai_error


# sampled with ignore_eos: seeds 1 and 4 draw special tokens (<video>, <SPECIAL_7>) from the random model
SAMPLED = {"model": MODEL_NAME, "prompt": "hello", "max_tokens": 12, "temperature": 1, "ignore_eos": True}


def streamed_logprobs(http, body) -> tuple[str, list[str], list[int]]:
    """(text, tokens, text_offset) of a streamed completion, its chunks joined."""
    text, tokens, offsets = "", [], []
    with http.stream("POST", "/v1/completions", json={**body, "stream": True}) as resp:
        assert resp.status_code == 200, resp.read()
        for line in resp.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[len("data: "):])["choices"][0]
            text += choice["text"]
            if choice["logprobs"]:
                tokens += choice["logprobs"]["tokens"]
                offsets += choice["logprobs"]["text_offset"]
    return text, tokens, offsets


@pytest.mark.parametrize("echo", [False, True])
@pytest.mark.parametrize("seed", [1, 4])
def test_streamed_text_offset_continues(http, seed, echo):
    body = {**SAMPLED, "seed": seed, "logprobs": 2, "echo": echo}
    choice = http.post("/v1/completions", json=body).json()["choices"][0]
    lp = choice["logprobs"]
    assert lp["text_offset"][0] == (len("hello") if echo else 0)
    assert streamed_logprobs(http, body) == (choice["text"], lp["tokens"], lp["text_offset"])


def test_text_offset_skips_special_tokens(tiny_parts):
    from nanovl.engine.outputs import TokenLogprob
    from nanovl.openai_api.responses import completion_logprobs

    tok = tiny_parts[2]
    ids = [tok.token_to_id("<SPECIAL_12>"), *tok.encode("15"), tok.token_to_id("<SPECIAL_7>"), *tok.encode(" 11")]
    items = [TokenLogprob(i, -1.0) for i in ids]
    pieces = [tok.decode([i], skip_special_tokens=True) for i in ids]
    assert "".join(pieces) == tok.decode(ids, skip_special_tokens=True) == "15 11"

    skipped, end = completion_logprobs(tok, items, 0)
    assert skipped["tokens"][0] == "<SPECIAL_12>"
    assert skipped["text_offset"] == [sum(map(len, pieces[:k])) for k in range(len(ids))]
    assert end.chars == len("15 11")
    kept, end = completion_logprobs(tok, items, 0, skip_special_tokens=False)
    assert kept["text_offset"][1] == len("<SPECIAL_12>") and end.chars == len(tok.decode(ids))


MULTI_BYTE = "é€ x 😀 naïve 中文"


def char_starts(text: str) -> dict[int, int]:
    """UTF-8 byte position of each character's start -> its character index."""
    starts, pos = {}, 0
    for k, ch in enumerate(text):
        starts[pos] = k
        pos += len(ch.encode("utf-8"))
    starts[pos] = len(text)
    return starts


@pytest.mark.parametrize("chunk", [1, 2, 100])
def test_text_offset_counts_characters_split_across_byte_tokens(tiny_parts, chunk):
    # byte-level tokens that hold part of a character decode alone to U+FFFD; counting those as a
    # character each made every later offset drift. Chunked as a stream sends them, too.
    from nanovl.engine.outputs import TokenLogprob
    from nanovl.openai_api.responses import completion_logprobs

    tok = tiny_parts[2]
    ids = tok.encode(MULTI_BYTE)
    token_bytes = [tok.token_bytes(i) for i in ids]
    assert b"".join(token_bytes) == MULTI_BYTE.encode("utf-8")
    assert any(len(b) < len(tok.decode([i]).encode("utf-8")) for i, b in zip(ids, token_bytes)), \
        "the text must split some character across tokens"

    offsets, cursor = [], 0
    for k in range(0, len(ids), chunk):
        lp, cursor = completion_logprobs(tok, [TokenLogprob(i, -1.0) for i in ids[k:k + chunk]], 0, cursor)
        offsets += lp["text_offset"]
    assert cursor.chars == len(MULTI_BYTE) and cursor.pending == b""

    # a token starting a character sits at that character; one finishing a character that others
    # began sits at the character's start
    starts, pos = char_starts(MULTI_BYTE), 0
    for off, data in zip(offsets, token_bytes):
        expected = starts[pos] if pos in starts else max(k for p, k in starts.items() if p < pos)
        assert off == expected, (off, expected, data)
        pos += len(data)


def test_chat_logprob_bytes_are_the_tokens_own(tiny_parts):
    # OpenAI's `bytes` field exists for tokens that are not whole characters: their joined bytes
    # must give back the text
    from nanovl.engine.outputs import TokenLogprob
    from nanovl.openai_api.responses import chat_logprobs

    tok = tiny_parts[2]
    ids = tok.encode(MULTI_BYTE)
    lp = chat_logprobs(tok, [TokenLogprob(i, -1.0, [(i, -1.0)]) for i in ids], 1)
    assert bytes(b for item in lp["content"] for b in item["bytes"]).decode("utf-8") == MULTI_BYTE
    assert all(item["top_logprobs"][0]["bytes"] == item["bytes"] for item in lp["content"])


@pytest.mark.parametrize("stream", [False, True])
def test_context_error_names_prompt(http, stream):
    body = {"model": MODEL_NAME, "prompt": "word " * 500, "max_tokens": 2, "stream": stream}
    err = assert_openai_error(http.post("/v1/completions", json=body), 400)
    assert err["code"] == "context_length_exceeded" and err["param"] == "prompt"


@pytest.fixture
def encode_calls(tiny_parts):
    """Texts the servers' shared tokenizer encodes while the test runs."""
    tok, calls = tiny_parts[2], []
    real = tok.encode

    def recording(text, **kw):
        calls.append(text)
        return real(text, **kw)

    tok.encode = recording
    yield calls
    del tok.encode


def test_text_that_cannot_fit_is_refused_untokenized(http, tiny_parts, encode_calls):
    from nanovl.openai_api.translate import max_prompt_chars

    too_long = "x" * (max_prompt_chars(tiny_parts[2], MAX_MODEL_LEN) + 1)
    requests = [("/v1/completions", {"prompt": too_long}, "prompt"),
                ("/v1/completions", {"prompt": ["hi", too_long]}, "prompt"),
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": too_long}]}, "messages"),
                ("/v1/chat/completions", {"messages": [{"role": "user", "content": [
                    {"type": "text", "text": too_long[:10]}, {"type": "text", "text": too_long[10:]}]}]}, "messages")]
    for path, body, param in requests:
        err = assert_openai_error(http.post(path, json={"model": MODEL_NAME, "max_tokens": 2, **body}), 400)
        assert err["code"] == "context_length_exceeded" and err["param"] == param
    assert not any(len(text) >= len(too_long) for text in encode_calls)


def test_tokenizing_leaves_the_event_loop_free(http, tiny_parts):
    tok, started = tiny_parts[2], threading.Event()
    real = tok.encode

    def slow(text, **kw):
        if text == "slow prompt":
            started.set()
            time.sleep(2.0)
        return real(text, **kw)

    tok.encode = slow
    worker = threading.Thread(target=http.post, args=("/v1/completions",),
                              kwargs={"json": {"model": MODEL_NAME, "prompt": "slow prompt", "max_tokens": 2}})
    try:
        worker.start()
        assert started.wait(30)
        t0 = time.monotonic()
        assert http.get("/health").status_code == 200
        assert time.monotonic() - t0 < 1.0, "/health waited for the tokenizer"
    finally:
        worker.join(60)
        del tok.encode


def test_think_switches_do_not_count_towards_the_character_bound(http, tiny_parts):
    # the template deletes /think and /no_think, so a prompt made mostly of them can still fit;
    # the bound refused it before any tokenizing
    from nanovl.openai_api.translate import chat_text_chars, max_prompt_chars

    limit = max_prompt_chars(tiny_parts[2], MAX_MODEL_LEN)
    switches = "/no_think" * (limit // len("/no_think") + 1)
    messages = [{"role": "system", "content": switches}, {"role": "user", "content": "hi /think"}]
    assert chat_text_chars(messages) == len("hi ")
    resp = http.post("/v1/chat/completions", json={"model": MODEL_NAME, "messages": messages, "max_tokens": 2})
    assert resp.status_code == 200, resp.text
