"""AsyncEngine: concurrent streams equal the sync engine, disconnects abort, errors reach the caller.

Run: pytest tests/engine/test_engine_async.py
"""
from __future__ import annotations

import asyncio

import pytest

import nanovl
from nanovl.engine.async_engine import AsyncEngine
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.errors import ContextLengthError
from nanovl.llm import LLM
from nanovl.sampling_params import SamplingParams
from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer

GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
QUESTIONS = ["hello", "describe the frame", "who are you", "yes"]


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_async")
    tok_dir = build_tiny_tokenizer(root / "tok")
    ckpt = write_random_vl_checkpoint(root / "ckpt", tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})
    return ckpt, nanovl.load_model(ckpt), Tokenizer.from_dir(ckpt)


def make_engine(parts, **kw) -> LLMEngine:
    ckpt, model, tok = parts
    return LLMEngine(EngineConfig(model=str(ckpt), max_model_len=200, **kw), model=model, tokenizer=tok)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


async def collect(agen) -> list:
    return [out async for out in agen]


def test_concurrent_streams_match_sync(parts):
    want = [o.token_ids for o in LLM(engine=make_engine(parts, max_num_seqs=4)).chat(
        [user(q) for q in QUESTIONS], GREEDY)]
    engine = AsyncEngine(make_engine(parts, max_num_seqs=2))

    async def main():
        return await asyncio.gather(*(collect(engine.chat(user(q), GREEDY)) for q in QUESTIONS))

    try:
        streams = asyncio.run(main())
    finally:
        engine.shutdown()
    assert [s[-1].token_ids for s in streams] == want
    for s in streams:
        assert s[-1].finished and not any(o.finished for o in s[:-1])
        assert "".join(o.delta_reasoning for o in s) == s[-1].reasoning_content
    stats = engine.stats()
    assert stats["added"] == 4 and stats["finished_length"] == 4 and stats["num_generated_tokens"] == 32


def test_disconnect_aborts_and_frees_slot(parts):
    engine = AsyncEngine(make_engine(parts, max_num_seqs=1))

    async def main():
        long = SamplingParams(temperature=0, max_tokens=150, ignore_eos=True)
        agen = engine.chat(user("hello"), long)
        first = [await agen.__anext__(), await agen.__anext__()]
        await agen.aclose()  # what the server does when the client goes away
        # the next request gets the only slot once the abort is applied
        rest = await collect(engine.chat(user("yes"), GREEDY))
        return first, rest

    try:
        first, rest = asyncio.run(main())
    finally:
        engine.shutdown()
    assert not first[-1].finished and rest[-1].finish_reason == "length"
    assert engine.counters["aborted"] == 1 and engine.queue_depth == 0 and engine.num_running == 0
    assert engine.engine.scheduler.cache.num_free_slots == 1


def test_errors_reach_the_caller(parts):
    engine = AsyncEngine(make_engine(parts, max_num_seqs=1))

    async def main():
        with pytest.raises(ContextLengthError):
            await collect(engine.generate([20] * 250, GREEDY))
        return await collect(engine.generate("hello", GREEDY))

    try:
        outs = asyncio.run(main())
    finally:
        engine.shutdown()
    assert outs[-1].num_generated_tokens == 8 and engine.counters["rejected"] == 1
    assert not engine.is_running


def test_async_prefix_reuse(parts):
    engine = AsyncEngine(make_engine(parts, max_num_seqs=2))
    first = user("describe the frame in detail please")
    full = first + [{"role": "assistant", "content": "ok"}, {"role": "user", "content": "why?"}]

    async def main():
        handle = await engine.save_prefix(first)
        reused = await collect(engine.chat(full, GREEDY, prefix=handle))
        plain = await collect(engine.chat(full, GREEDY))
        return handle, reused[-1], plain[-1]

    try:
        handle, reused, plain = asyncio.run(main())
    finally:
        engine.shutdown()
    assert reused.token_ids == plain.token_ids and reused.num_cached_tokens == handle.num_tokens > 0


def test_cancel_while_being_added_leaks_nothing(parts):
    engine = AsyncEngine(make_engine(parts, max_num_seqs=1))
    long = SamplingParams(temperature=0, max_tokens=150, ignore_eos=True)

    async def main():
        # generate() first waits for the engine thread to add the request: cancel right there
        tasks = [asyncio.create_task(collect(engine.generate("hello", long))) for _ in range(3)]
        await asyncio.sleep(0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # a dead engine thread would hang here: fail instead (the limit is no speed check)
        return await asyncio.wait_for(collect(engine.generate("yes", GREEDY)), 120)

    try:
        rest = asyncio.run(main())
    finally:
        engine.shutdown()
    # every cancelled request that got in was aborted; none ran its 150 tokens
    assert rest[-1].finish_reason == "length" and rest[-1].num_generated_tokens == 8
    assert engine.counters["finished_length"] == 1
    assert engine.counters["aborted"] == engine.counters["added"] - 1
    assert engine.is_running is False and engine.num_running == 0


def test_response_format_compiles_off_the_engine_thread(parts, monkeypatch):
    # a large schema compiles for seconds; on the engine thread that froze every other stream
    import threading

    from nanovl.errors import InvalidRequestError
    from nanovl.structured import grammar

    threads = []
    real = grammar.compile_grammar

    def recording(fmt):
        threads.append(threading.current_thread().name)
        return real(fmt)

    monkeypatch.setattr(grammar, "compile_grammar", recording)
    engine = AsyncEngine(make_engine(parts, max_num_seqs=2))
    fmt = {"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object", "properties": {
        "n": {"type": "integer"}}, "required": ["n"]}}}
    bad = {"type": "json_schema", "json_schema": {"name": "b", "schema": {"type": "strin"}}}

    async def main():
        outs = await collect(engine.chat(user("a number"), SamplingParams(temperature=0, max_tokens=12,
                                                                          response_format=fmt)))
        with pytest.raises(InvalidRequestError, match="response_format: invalid JSON schema"):
            await collect(engine.chat(user("x"), SamplingParams(max_tokens=4, response_format=bad)))
        return outs

    try:
        asyncio.run(main())
    finally:
        engine.shutdown()
    # the first compile (the costly one: the engine's own call then hits the cache) ran on a worker
    assert threads[0] != "nanovl-engine" and threads.count("nanovl-engine") <= 1
    # the bad schema was refused before the engine thread saw it
    assert threads[-1] != "nanovl-engine"
