"""The real server (uvicorn on 127.0.0.1) driven by the official openai client: chat, streaming,
media, structured output, reasoning, usage, completions, /v1/models, /health, /metrics.

Run: pytest tests/server/test_server_chat.py
"""
from __future__ import annotations

import json

import jsonschema
import pytest
from serverkit import MODEL_NAME, data_uri, image_part, mp4_bytes, png_bytes, user


GREEDY = {"temperature": 0, "max_tokens": 8}
NO_THINK = {"chat_template_kwargs": {"enable_thinking": False}}
SCHEMA = {"type": "object",
          "properties": {"color": {"type": "string", "enum": ["red", "green", "blue"]},
                         "count": {"type": "integer", "minimum": 0, "maximum": 9}},
          "required": ["color", "count"], "additionalProperties": False}


def chat(client, messages, extra_body=None, **kw):
    kw = {**GREEDY, **kw}
    return client.chat.completions.create(model=MODEL_NAME, messages=messages, extra_body=extra_body, **kw)


def test_models_and_health(client, http):
    models = client.models.list().data
    assert [m.id for m in models] == [MODEL_NAME]
    assert models[0].model_extra["max_model_len"] == 400
    assert http.get("/health").json() == {"status": "ok", "model": MODEL_NAME}


def test_chat_answer_and_usage(client, tiny_parts):
    messages = [{"role": "user", "content": "hello there"}]
    resp = chat(client, messages, extra_body={"ignore_eos": True, **NO_THINK})
    choice = resp.choices[0]
    assert resp.object == "chat.completion" and resp.model == MODEL_NAME
    assert choice.message.role == "assistant" and choice.finish_reason == "length"
    # thinking off: no reasoning field, the whole output is the answer
    assert getattr(choice.message, "reasoning_content", None) is None
    tok = tiny_parts[2]
    assert resp.usage.completion_tokens == 8
    assert resp.usage.prompt_tokens > len(tok.encode("hello there"))
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + 8


def test_streaming_equals_non_streaming(client):
    messages = [{"role": "user", "content": "count to three"}]
    extra = {"ignore_eos": True}
    whole = chat(client, messages, extra_body=extra).choices[0].message
    chunks = list(chat(client, messages, extra_body=extra, stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    reasoning = "".join(c.choices[0].delta.model_extra.get("reasoning_content") or "" for c in chunks if c.choices)
    assert (content, reasoning) == (whole.content, whole.reasoning_content)
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    # include_usage: one last chunk with no choices and the totals
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 8


def test_reasoning_on_and_off(client):
    messages = [{"role": "user", "content": "think about it"}]
    on = chat(client, messages, extra_body={"ignore_eos": True, "chat_template_kwargs": {"enable_thinking": True}})
    off = chat(client, messages, extra_body={"ignore_eos": True, **NO_THINK})
    # the random model never closes </think>, so with thinking on all 8 tokens are reasoning
    assert on.choices[0].message.reasoning_content and on.choices[0].message.content == ""
    assert off.choices[0].message.content and getattr(off.choices[0].message, "reasoning_content", None) is None
    # a thinking budget ends the reasoning early; the schema then constrains the answer
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}
    budget = chat(client, messages, max_tokens=60, response_format=fmt,
                  extra_body={"thinking_token_budget": 3, "chat_template_kwargs": {"enable_thinking": True}})
    msg = budget.choices[0].message
    assert msg.reasoning_content and budget.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(msg.content), SCHEMA)
    # the alias inside chat_template_kwargs gives the same answer
    alias = chat(client, messages, max_tokens=60, response_format=fmt,
                 extra_body={"chat_template_kwargs": {"enable_thinking": True, "thinking_budget": 3}})
    assert alias.choices[0].message == msg


def test_image_data_uri(client):
    messages = user(image_part(data_uri(png_bytes())), text="what color?")
    with_image = chat(client, messages, extra_body=NO_THINK)
    text_only = chat(client, [{"role": "user", "content": "what color?"}], extra_body=NO_THINK)
    # the image's tiles are in the prompt: many more prompt tokens than the text alone
    assert with_image.usage.prompt_tokens > text_only.usage.prompt_tokens + 16


def test_video(client, tmp_path):
    uri = data_uri(mp4_bytes(tmp_path / "clip.mp4", num_frames=8), "video/mp4")
    part = {"type": "video_url", "video_url": {"url": uri}}
    full = chat(client, user(part, text="what happens?"), extra_body=NO_THINK)
    pruned = chat(client, user(part, text="what happens?"), extra_body={**NO_THINK, "video_pruning_rate": 0.75})
    assert full.choices[0].finish_reason in ("stop", "length")
    # EVS drops video tokens: the pruned prompt is shorter
    assert pruned.usage.prompt_tokens < full.usage.prompt_tokens


def test_json_schema_response_validates(client):
    fmt = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA}}
    for seed in range(3):
        resp = chat(client, [{"role": "user", "content": "json please"}], temperature=1.0, seed=seed,
                    max_tokens=60, response_format=fmt, extra_body=NO_THINK)
        assert resp.choices[0].finish_reason == "stop"
        jsonschema.validate(json.loads(resp.choices[0].message.content), SCHEMA)


def test_sampling_options(client):
    messages = [{"role": "user", "content": "say something"}]
    extra = {"ignore_eos": True, **NO_THINK}
    base = chat(client, messages, extra_body=extra, max_tokens=12).choices[0].message.content
    # max_completion_tokens is the newer name of max_tokens
    newer = chat(client, messages, extra_body={**extra, "max_completion_tokens": 12}, max_tokens=None)
    assert newer.choices[0].message.content == base
    stop = base[3:5]
    cut = chat(client, messages, extra_body=extra, max_tokens=12, stop=[stop]).choices[0]
    assert cut.finish_reason == "stop" and stop not in cut.message.content
    sampled = [chat(client, messages, extra_body=extra, temperature=1.0, top_p=0.9, seed=7, n=2) for _ in range(2)]
    assert [c.message.content for c in sampled[0].choices] == [c.message.content for c in sampled[1].choices]
    assert len(sampled[0].choices) == 2 and sampled[0].usage.completion_tokens == 16
    lp = chat(client, messages, extra_body=extra, logprobs=True, top_logprobs=2).choices[0].logprobs.content
    assert len(lp) == 8 and all(len(t.top_logprobs) == 2 and t.logprob <= 0 for t in lp)


def test_completions(client):
    resp = client.completions.create(model=MODEL_NAME, prompt="once upon a time", max_tokens=6, temperature=0,
                                     echo=True, logprobs=1, extra_body={"ignore_eos": True})
    choice = resp.choices[0]
    assert choice.text.startswith("once upon a time") and choice.finish_reason == "length"
    assert resp.usage.completion_tokens == 6 and len(choice.logprobs.tokens) == 6
    streamed = client.completions.create(model=MODEL_NAME, prompt="once upon a time", max_tokens=6, temperature=0,
                                         stream=True, extra_body={"ignore_eos": True})
    assert "once upon a time" + "".join(c.choices[0].text for c in streamed) == choice.text


def test_metrics(client, http):
    chat(client, [{"role": "user", "content": "hi"}])
    http.get("/v1/nope")
    text = http.get("/metrics")
    assert text.headers["content-type"].startswith("text/plain")
    lines = text.text.splitlines()
    assert "# TYPE nanovl_requests_total counter" in lines
    assert any(line.startswith('nanovl_requests_total{endpoint="/v1/chat/completions",status="200"}')
               for line in lines)
    assert any(line.startswith('nanovl_requests_total{endpoint="other",status="404"}') for line in lines)
    values = {line.split()[0]: float(line.split()[1]) for line in lines if line and not line.startswith("#")}
    assert values["nanovl_generation_tokens_total"] >= 8 and values["nanovl_prompt_tokens_total"] > 0
    assert values["nanovl_num_requests_waiting"] == 0
    assert values["nanovl_e2e_request_latency_seconds_count"] >= 1
    assert values['nanovl_time_to_first_token_seconds_bucket{le="+Inf"}'] >= 1


@pytest.mark.parametrize("name", [None, MODEL_NAME])
def test_model_name_optional(http, name):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    if name:
        body["model"] = name
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and resp.json()["model"] == MODEL_NAME


def test_streaming_n_and_logprobs_match_non_streaming(client):
    messages = [{"role": "user", "content": "two ways"}]
    kw = dict(temperature=1.0, seed=3, n=2, logprobs=True, top_logprobs=1, extra_body={"ignore_eos": True, **NO_THINK})
    whole = chat(client, messages, **kw)
    texts, tokens = ["", ""], [[], []]
    for c in chat(client, messages, stream=True, **kw):
        for ch in c.choices:
            texts[ch.index] += ch.delta.content or ""
            tokens[ch.index] += [t.token for t in (ch.logprobs.content if ch.logprobs else [])]
    assert texts == [c.message.content for c in whole.choices]
    assert tokens == [[t.token for t in c.logprobs.content] for c in whole.choices]


def test_completions_several_prompts(client, tiny_parts):
    ids = tiny_parts[2].encode("the cat")
    resp = client.completions.create(model=MODEL_NAME, prompt=[ids, ids], max_tokens=4, temperature=0,
                                     extra_body={"ignore_eos": True})
    single = client.completions.create(model=MODEL_NAME, prompt=ids, max_tokens=4, temperature=0,
                                       extra_body={"ignore_eos": True})
    assert [c.text for c in resp.choices] == [single.choices[0].text] * 2
    assert resp.usage.prompt_tokens == 2 * single.usage.prompt_tokens == 2 * len(ids)


def test_pdf_file_part_reads_as_its_pages(client, http, tmp_path):
    # OpenAI's `file` part: a PDF's pages go in as images, so the answer equals the one for the pages
    import io

    from PIL import Image

    from nanovl.inputs.pdf import load_pdf_pages
    from nanovl.inputs.pdf_parts import PAGE_DPI

    pdf = tmp_path / "doc.pdf"
    pages = [Image.new("RGB", (32, 32), color) for color in ("white", "gray")]
    pages[0].save(pdf, save_all=True, append_images=pages[1:], resolution=72.0)
    uri = data_uri(pdf.read_bytes(), "application/pdf")

    as_file = chat(client, user({"type": "file", "file": {"file_data": uri, "filename": "doc.pdf"}}), NO_THINK)
    rendered = []
    for page in load_pdf_pages(str(pdf), dpi=PAGE_DPI):
        buf = io.BytesIO()
        page.save(buf, "PNG")
        rendered.append(image_part(data_uri(buf.getvalue())))
    as_pages = chat(client, user(*rendered), NO_THINK)
    assert as_file.choices[0].message.content == as_pages.choices[0].message.content
    assert as_file.usage.prompt_tokens == as_pages.usage.prompt_tokens
    # bare base64 is read as a PDF too; an uploaded file id is not something this server has
    bare = {"type": "file", "file": {"file_data": uri.split(",", 1)[1]}}
    assert chat(client, user(bare), NO_THINK).usage.prompt_tokens == as_pages.usage.prompt_tokens
    body = {"model": MODEL_NAME, "messages": user({"type": "file", "file": {"file_id": "file-123"}}), **GREEDY}
    resp = http.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400 and "file_data" in resp.json()["error"]["message"]
