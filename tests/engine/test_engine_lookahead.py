"""The engine's decode lookahead (engine/lookahead.py) on the CPU, through FakeGraphs.

With the graphs faked (nanovl/testing/fake_graphs.py) the step launched ahead runs at once, but the
engine's bookkeeping is the real one: which steps go ahead, how the next step() picks the result up,
what happens to rows of requests that ended, to arrivals and to aborts. Every test compares tokens
with the same requests run without lookahead.
"""
from __future__ import annotations

import pytest
import torch

import nanovl
from nanovl.engine import model_runner
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.engine.request import RequestStatus
from nanovl.sampling_params import SamplingParams
from nanovl.testing.engine_runs import run_to_completion, write_tiny_vl_checkpoint
from nanovl.testing.fake_graphs import FakeGraphs
from nanovl.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ckpt = write_tiny_vl_checkpoint(tmp_path_factory.mktemp("tiny_vl_lookahead"))
    return ckpt, nanovl.load_model(ckpt), Tokenizer.from_dir(ckpt)


def _engine(tiny, monkeypatch, *, lookahead: bool = True, max_num_seqs: int = 4) -> LLMEngine:
    ckpt, model, tok = tiny
    engine = LLMEngine(EngineConfig(model=str(ckpt), max_num_seqs=max_num_seqs, decode_lookahead=lookahead),
                       model=model, tokenizer=tok)
    monkeypatch.setattr(model_runner, "DecodeCudaGraphs", FakeGraphs)
    engine.runner.use_cuda_graphs = True  # on the CPU the config alone keeps it off
    return engine


def _greedy(n: int, **kw) -> SamplingParams:
    return SamplingParams(temperature=0, max_tokens=n, ignore_eos=True, **kw)


def _solo(tiny, monkeypatch, prompt: str, params: SamplingParams) -> list[int]:
    return run_to_completion(_engine(tiny, monkeypatch, lookahead=False, max_num_seqs=1), [prompt], params)[0]


def _step_until(engine: LLMEngine, cond, limit: int = 200) -> list:
    outs = []
    for _ in range(limit):
        if cond():
            return outs
        outs += engine.step()
    raise AssertionError("condition never met")


def _assert_lengths_mirror_the_pool(engine: LLMEngine) -> None:
    runner = engine.runner
    device_lens = runner.pool.seq_lens.tolist()
    for req in engine.scheduler.running:
        assert runner._lens[req.slot] == device_lens[req.slot], req.req_id


@torch.inference_mode()
def test_lookahead_gives_the_tokens_of_plain_steps(tiny, monkeypatch):
    prompts = ["hi", "what is the answer please", "describe the frame " * 4]
    params = [_greedy(12), _greedy(5), _greedy(20)]
    plain = run_to_completion(_engine(tiny, monkeypatch, lookahead=False), prompts, params)
    engine = _engine(tiny, monkeypatch)
    assert run_to_completion(engine, prompts, params) == plain
    # 3 prefill steps, then every decode step that does not end a request by length goes ahead
    assert engine.num_lookahead_steps >= 12
    assert engine.stats()["num_lookahead_steps"] == engine.num_lookahead_steps
    assert engine._ahead is None or not engine.has_unfinished_requests()


@torch.inference_mode()
def test_batch_one_request_goes_ahead_on_every_decode_step_but_the_last(tiny, monkeypatch):
    engine = _engine(tiny, monkeypatch, max_num_seqs=1)
    got = run_to_completion(engine, ["where and when " * 3], _greedy(10))[0]
    assert got == _solo(tiny, monkeypatch, "where and when " * 3, _greedy(10))
    # tokens 2..10 come from decode steps; the one producing token 10 ends by length, so it stays home
    assert engine.num_lookahead_steps == 8


@torch.inference_mode()
def test_a_full_engine_with_a_queue_still_goes_ahead(tiny, monkeypatch):
    # 2 slots, 5 requests: the queue is never empty until the end, but no slot is free between the
    # length-ended steps (which stay home, so each successor starts on the same step as without)
    prompts = ["hi", "what is the answer please", "describe the frame " * 3, "yes", "where and when"]
    params = [_greedy(n) for n in (9, 4, 12, 6, 10)]
    plain = run_to_completion(_engine(tiny, monkeypatch, lookahead=False, max_num_seqs=2), prompts, params)
    engine = _engine(tiny, monkeypatch, max_num_seqs=2)
    ids = [engine.add_request(p, sp) for p, sp in zip(prompts, params)]
    finals, ahead_with_queue = {}, 0
    while engine.has_unfinished_requests():
        queued = engine.scheduler.num_waiting
        before = engine.num_lookahead_steps
        finals.update({o.req_id: o.token_ids for o in engine.step() if o.finished})
        ahead_with_queue += queued > 0 and engine.num_lookahead_steps > before
    assert [finals[i] for i in ids] == plain
    assert ahead_with_queue >= 5


@torch.inference_mode()
def test_a_request_that_stops_drops_its_in_flight_row_and_its_slot_is_reused(tiny, monkeypatch):
    prompt_a, prompt_b, prompt_c = "hello world", "who " * 5, "how why " * 3
    free_run = _solo(tiny, monkeypatch, prompt_a, _greedy(30))
    # stop A on the first token it produces at its 6th or later output (a decode step, with lookahead)
    stop = next(t for i, t in enumerate(free_run) if i >= 5 and t not in free_run[:i])
    a_params = SamplingParams(temperature=0, max_tokens=30, stop_token_ids=[stop], ignore_eos=True)
    engine = _engine(tiny, monkeypatch, max_num_seqs=2)
    a = engine.add_request(prompt_a, a_params)
    b = engine.add_request(prompt_b, _greedy(25))
    finals = {}
    while a not in finals:
        finals.update({o.req_id: o.token_ids for o in engine.step() if o.finished})
    assert finals[a] == free_run[:free_run.index(stop) + 1]
    assert engine._ahead is not None and a in engine._ahead.req_ids  # A's row went ahead and is dropped
    _assert_lengths_mirror_the_pool(engine)
    c = engine.add_request(prompt_c, _greedy(8))  # takes A's slot once the in-flight step is used
    while engine.has_unfinished_requests():
        finals.update({o.req_id: o.token_ids for o in engine.step() if o.finished})
    assert finals[b] == _solo(tiny, monkeypatch, prompt_b, _greedy(25))
    assert finals[c] == _solo(tiny, monkeypatch, prompt_c, _greedy(8))


@torch.inference_mode()
def test_a_stop_string_ends_the_request_the_same_way(tiny, monkeypatch):
    # stop strings end a request in the engine's output step, after the next step went ahead
    _, _, tok = tiny
    free_run = _solo(tiny, monkeypatch, "who " * 4, _greedy(30))
    text = tok.decode(free_run[8:], skip_special_tokens=True)
    stop = next(text[i:i + 3] for i in range(len(text) - 3)
                if text[i:i + 3].strip() and text[i:i + 3] not in tok.decode(free_run[:8], skip_special_tokens=True))
    params = SamplingParams(temperature=0, max_tokens=30, stop=[stop], ignore_eos=True)
    outs = {}
    for lookahead in (False, True):
        engine = _engine(tiny, monkeypatch, lookahead=lookahead, max_num_seqs=2)
        ids = [engine.add_request("who " * 4, params), engine.add_request("hello world", _greedy(20))]
        finals = {}
        while engine.has_unfinished_requests():
            finals.update({o.req_id: (o.token_ids, o.text, o.finish_reason) for o in engine.step() if o.finished})
        outs[lookahead] = [finals[i] for i in ids]
        assert (engine.num_lookahead_steps > 0) == lookahead
    assert outs[True] == outs[False]
    token_ids, text_out, reason = outs[True][0]
    assert reason == "stop" and len(token_ids) < 30 and stop not in text_out


@torch.inference_mode()
def test_an_arrival_waits_one_step_while_a_step_is_in_flight(tiny, monkeypatch):
    engine = _engine(tiny, monkeypatch)
    first = engine.add_request("describe the frame", _greedy(20))
    _step_until(engine, lambda: engine._ahead is not None)
    late = engine.add_request("yes", _greedy(6))
    engine.step()  # uses the in-flight step; admits nobody, and does not go ahead (someone waits)
    assert engine.scheduler.requests[late].status == RequestStatus.WAITING
    assert engine._ahead is None
    engine.step()
    assert engine.scheduler.requests[late].status == RequestStatus.RUNNING
    finals = {}
    while engine.has_unfinished_requests():
        for out in engine.step():
            if out.finished:
                finals[out.req_id] = out.token_ids
            _assert_lengths_mirror_the_pool(engine)
    assert finals[first] == _solo(tiny, monkeypatch, "describe the frame", _greedy(20))
    assert finals[late] == _solo(tiny, monkeypatch, "yes", _greedy(6))


@torch.inference_mode()
def test_abort_while_in_flight_then_the_slot_serves_a_new_request(tiny, monkeypatch):
    engine = _engine(tiny, monkeypatch, max_num_seqs=1)
    gone = engine.add_request("where and when", _greedy(30))
    _step_until(engine, lambda: engine._ahead is not None)
    assert engine.abort(gone)
    outs = engine.step()
    assert [(o.req_id, o.finish_reason) for o in outs] == [(gone, "abort")]
    assert engine._ahead is None and not engine.has_unfinished_requests()
    got = run_to_completion(engine, ["hello world"], _greedy(9))[0]
    assert got == _solo(tiny, monkeypatch, "hello world", _greedy(9))


def _chat_run(engine: LLMEngine, texts: list[str], params: list[SamplingParams]) -> list[list[int]]:
    prompts = [engine.processor.process_chat([{"role": "user", "content": t}],
                                             enable_thinking=p.enable_thinking) for t, p in zip(texts, params)]
    return run_to_completion(engine, prompts, params)


JSON = {"type": "json_object"}
# rows that draw on the device from host state (generators, penalties over past ids, grammar masks,
# a thinking budget that has not forced yet) go ahead; a row wanting logprobs keeps the batch home
CASES = {
    "seeded-draw": (SamplingParams(temperature=0.8, seed=3, max_tokens=14, ignore_eos=True), True),
    "penalties": (SamplingParams(temperature=0, repetition_penalty=1.3, presence_penalty=0.5, max_tokens=14,
                                 ignore_eos=True), True),
    "grammar": (SamplingParams(temperature=0.9, seed=5, max_tokens=300, response_format=JSON, enable_thinking=False),
                True),
    "thinking-budget": (SamplingParams(temperature=0.7, seed=9, max_tokens=300, response_format=JSON,
                                       thinking_budget=4), True),
    "logprobs": (_greedy(14, logprobs=2), False),
}


@torch.inference_mode()
@pytest.mark.parametrize("case", list(CASES))
def test_rows_drawn_from_host_state_give_the_tokens_of_plain_steps(tiny, monkeypatch, case):
    other, goes_ahead = CASES[case]
    texts = ["hi there", "what is the answer please"]
    params = [_greedy(12, enable_thinking=False), other]
    plain = _chat_run(_engine(tiny, monkeypatch, lookahead=False), texts, params)
    engine = _engine(tiny, monkeypatch)
    assert _chat_run(engine, texts, params) == plain
    assert (engine.num_lookahead_steps > 0) == goes_ahead
    if case in ("grammar", "thinking-budget"):
        # the grammar ended the request (a complete JSON object) before max_tokens
        assert len(plain[1]) < other.max_tokens


def test_engine_config_checks_the_switch():
    with pytest.raises(ValueError, match="decode_lookahead must be a bool"):
        EngineConfig(decode_lookahead=1)
