"""/v1/models, /v1/chat/completions and /v1/completions (JSON or SSE streaming).

Each handler: check the model name -> translate the body (openai_api/translate.py) -> fetch media
(server/media.py) -> process the prompt and start the engine requests (server/choices.py) ->
shape the outputs (openai_api/responses.py). A client that disconnects aborts its requests.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from nanovl.engine.outputs import RequestOutput
from nanovl.openai_api import responses as R
from nanovl.openai_api import translate
from nanovl.openai_api.schemas import ChatCompletionRequest, CompletionRequest
from nanovl.sampling_params import SamplingParams
from nanovl.server.choices import Choices
from nanovl.server.errors import APIError, error_body, to_api_error
from nanovl.server.media import resolve_media
from nanovl.server.state import ServerState
from nanovl.server.tool_call_stream import ToolCallStream, tool_call_deltas

DISCONNECT_POLL_S = 0.25
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def register_routes(app: FastAPI, state: ServerState) -> None:
    """Mount the OpenAI routes on `app`, bound to `state`."""

    def model_object(name: str) -> dict[str, Any]:
        return {"id": name, "object": "model", "created": state.created, "owned_by": "nanovl",
                "root": state.model_name, "max_model_len": state.max_model_len}

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        return {"object": "list", "data": [model_object(name) for name in state.model_names]}

    @app.get("/v1/models/{model_id:path}")
    async def retrieve_model(model_id: str) -> dict[str, Any]:
        if model_id not in state.model_names:
            raise APIError(404, f"the model {model_id!r} does not exist; this server serves "
                                f"{list(state.model_names)}", param="model", code="model_not_found")
        return model_object(model_id)

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest, request: Request):
        t0 = time.monotonic()
        model = state.check_model(req.model)
        translate.check_supported(req)
        state.check_fits_queue(req.n, req.n)
        inputs = translate.chat_inputs(req)
        if state.max_prompt_chars is not None:
            translate.check_prompt_chars(translate.chat_text_chars(inputs.messages), state.max_prompt_chars,
                                         state.max_model_len, "messages")
        await resolve_media(inputs.messages, state.settings.media)
        probe = SamplingParams(enable_thinking=inputs.enable_thinking)
        processed = await state.engine.process_chat(inputs.messages, probe, tools=inputs.tools,
                                                    chat_template_kwargs=inputs.chat_template_kwargs)
        jobs = translate.chat_jobs(req, inputs, processed, state.max_model_len)
        num_lp = translate.chat_logprobs_count(req)
        choices = await Choices.open(state.engine, jobs)
        resp_id, created = R.new_id("chatcmpl"), R.now()
        if req.stream:
            return _sse(_chat_events(state, choices, req, resp_id, created, model, num_lp, t0))
        finals = await _finals_unless_disconnected(choices, request)
        _record(state, finals, t0)
        logprobs = R.chat_logprobs_of(state.tokenizer, finals, num_lp)
        return JSONResponse(R.chat_completion(resp_id, created, model, finals, logprobs,
                                              parse_tools=translate.parses_tools(req)))

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest, request: Request):
        t0 = time.monotonic()
        model = state.check_model(req.model)
        translate.check_supported(req)
        raw_prompts = translate.completion_prompts(req)
        state.check_fits_queue(len(raw_prompts) * req.n, req.n)
        if state.max_prompt_chars is not None:
            translate.check_completion_chars(raw_prompts, state.max_prompt_chars, state.max_model_len)
        # long prompts take seconds to tokenize: keep the event loop (and /health) responsive
        prompts = await asyncio.to_thread(_encode_all, state.tokenizer, raw_prompts)
        jobs = translate.completion_jobs(req, prompts, state.max_model_len)
        decoded = await asyncio.to_thread(_decode_all, state.tokenizer, prompts) if req.echo else None
        echoes = [decoded[k] if decoded else "" for k in range(len(prompts)) for _ in range(req.n)]
        choices = await Choices.open(state.engine, jobs)
        resp_id, created = R.new_id("cmpl"), R.now()
        if req.stream:
            return _sse(_completion_events(state, choices, req, resp_id, created, model, echoes, t0))
        finals = await _finals_unless_disconnected(choices, request)
        _record(state, finals, t0)
        logprobs = R.completion_logprobs_of(state.tokenizer, finals, echoes, req.logprobs,
                                            skip_special_tokens=req.skip_special_tokens)
        texts = [e + o.text for o, e in zip(finals, echoes)]
        return JSONResponse(R.completion(resp_id, created, model, finals, texts, logprobs,
                                         sum(len(ids) for ids in prompts)))


# ------------------------------------------------------------------ helpers
def _encode_all(tokenizer, prompts: list) -> list[list[int]]:
    return [tokenizer.encode(p) if isinstance(p, str) else list(p) for p in prompts]


def _decode_all(tokenizer, prompts: list[list[int]]) -> list[str]:
    return [tokenizer.decode(ids) for ids in prompts]


def _sse(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)


def _record(state: ServerState, finals: list[RequestOutput], t0: float) -> None:
    for out in finals:
        _record_one(state, out, t0)


def _record_one(state: ServerState, out: RequestOutput, t0: float) -> None:
    """Tokens and latencies; timed from when the server got the request (media and prompt work included)."""
    state.metrics.record_tokens(out.num_prompt_tokens, out.num_generated_tokens)
    m = out.metrics
    first = m.first_token_time if m is not None else None
    finish = m.finish_time if m is not None and m.finish_time is not None else time.monotonic()
    state.metrics.record_latency(None if first is None else first - t0, finish - t0)


async def _finals_unless_disconnected(choices: Choices, request: Request) -> list[RequestOutput]:
    """Run to the end, but abort (and answer 499) if the client goes away first."""

    async def watch() -> None:
        while not await request.is_disconnected():
            await asyncio.sleep(DISCONNECT_POLL_S)

    work = asyncio.ensure_future(choices.finals())
    watcher = asyncio.ensure_future(watch())
    try:
        done, _ = await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not work.done():
            # cancelling finals() runs Choices.stream's cleanup, which aborts the engine requests
            work.cancel()
            await asyncio.gather(work, return_exceptions=True)
    if work in done:
        return work.result()
    raise APIError(499, "the client disconnected; the request was aborted", code="cancelled")


def _usage_fields(req, out: RequestOutput) -> dict | None:
    opts = req.stream_options
    if opts is not None and opts.include_usage and opts.continuous_usage_stats:
        return R.usage(out.num_prompt_tokens, out.num_generated_tokens)
    return None


async def _chat_events(state: ServerState, choices: Choices, req: ChatCompletionRequest, resp_id: str,
                       created: int, model: str, num_lp: int | None, t0: float) -> AsyncIterator[str]:
    started, lp_sent, finals = set(), [0] * len(choices), {}
    tool_streams = [ToolCallStream() for _ in range(len(choices))] if translate.parses_tools(req) else None
    try:
        async for i, out in choices.stream():
            if i not in started:
                started.add(i)
                yield R.sse(R.chat_chunk(resp_id, created, model, i, {"role": "assistant", "content": ""}))
            delta, lp = R.chat_delta(out), None
            finish_reason = out.finish_reason if out.finished else None
            if tool_streams is not None:
                finish_reason = _route_tool_text(tool_streams[i], delta, out.finished, finish_reason)
            if num_lp is not None and out.logprobs is not None:
                lp = R.chat_logprobs(state.tokenizer, out.logprobs[lp_sent[i]:], num_lp)
                lp_sent[i] = len(out.logprobs)
            if delta or out.finished or (lp and lp["content"]):
                yield R.sse(R.chat_chunk(resp_id, created, model, i, delta, logprobs=lp,
                                         finish_reason=finish_reason, usage_stats=_usage_fields(req, out)))
            if out.finished:
                finals[i] = out
                _record_one(state, out, t0)
        if req.stream_options is not None and req.stream_options.include_usage:
            usage = R.usage_of([finals[i] for i in sorted(finals)])
            yield R.sse(R.usage_chunk(resp_id, created, model, "chat.completion.chunk", usage))
    except Exception as exc:  # noqa: BLE001 - the headers are sent; report in-band like vLLM
        err = to_api_error(exc, queue_full_status=state.settings.queue_full_status)
        yield R.sse(error_body(err.status, err.message, param=err.param, code=err.code))
    yield R.sse("[DONE]")


def _route_tool_text(stream: ToolCallStream, delta: dict, finished: bool, finish_reason: str | None) -> str | None:
    """Pass the delta's content through `stream` (in place); on the last output add the parsed calls.
    Returns the finish_reason to send ("tool_calls" when the answer held calls)."""
    content = stream.feed(delta.pop("content", ""))
    if finished:
        rest, calls = stream.finish()
        content += rest
        if calls:
            delta["tool_calls"] = tool_call_deltas(calls)
            finish_reason = "tool_calls"
    if content:
        delta["content"] = content
    return finish_reason


async def _completion_events(state: ServerState, choices: Choices, req: CompletionRequest, resp_id: str,
                             created: int, model: str, echoes: list[str], t0: float) -> AsyncIterator[str]:
    started, lp_sent, finals = set(), [0] * len(choices), {}
    # where choice i's next token starts in its text: after the echo, then after the tokens sent
    lp_offset = [len(e) for e in echoes]
    try:
        async for i, out in choices.stream():
            text = out.delta
            if i not in started:
                started.add(i)
                text = echoes[i] + text
            lp = None
            if req.logprobs is not None and out.logprobs is not None:
                lp, lp_offset[i] = R.completion_logprobs(state.tokenizer, out.logprobs[lp_sent[i]:], req.logprobs,
                                                         lp_offset[i], skip_special_tokens=req.skip_special_tokens)
                lp_sent[i] = len(out.logprobs)
            if text or out.finished or (lp and lp["tokens"]):
                chunk = R.completion_chunk(resp_id, created, model, i, text, logprobs=lp,
                                           finish_reason=out.finish_reason if out.finished else None)
                usage = _usage_fields(req, out)
                if usage is not None:
                    chunk["usage"] = usage
                yield R.sse(chunk)
            if out.finished:
                finals[i] = out
                _record_one(state, out, t0)
        if req.stream_options is not None and req.stream_options.include_usage:
            prompt_tokens = sum(finals[i].num_prompt_tokens for i in range(0, len(choices), req.n))
            usage = R.usage(prompt_tokens, sum(o.num_generated_tokens for o in finals.values()))
            yield R.sse(R.usage_chunk(resp_id, created, model, "text_completion", usage))
    except Exception as exc:  # noqa: BLE001
        err = to_api_error(exc, queue_full_status=state.settings.queue_full_status, prompt_param="prompt")
        yield R.sse(error_body(err.status, err.message, param=err.param, code=err.code))
    yield R.sse("[DONE]")
