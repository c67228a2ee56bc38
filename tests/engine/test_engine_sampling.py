"""Sampling knobs end to end on a tiny random VL model: penalties against a plain recompute loop,
top-k/top-p/min-p plumbing, stop token ids, stop strings while streaming, chunked prefill.

Run: pytest tests/engine/test_engine_sampling.py
"""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from PIL import Image

import nanovl
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.llm import LLM
from nanovl.sampling_params import SamplingParams
from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer

N = 10
GREEDY = SamplingParams(temperature=0, max_tokens=N, ignore_eos=True)


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_sampling")
    tok_dir = build_tiny_tokenizer(root / "tok")
    ckpt = write_random_vl_checkpoint(root / "ckpt", tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})
    return ckpt, nanovl.load_model(ckpt), Tokenizer.from_dir(ckpt)


def make_llm(parts, **kw) -> LLM:
    ckpt, model, tok = parts
    return LLM(engine=LLMEngine(EngineConfig(model=str(ckpt), **kw), model=model, tokenizer=tok))


@pytest.fixture(scope="module")
def llm(parts):
    return make_llm(parts, max_num_seqs=4)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def penalised_greedy(model, prompt: list[int], n: int, rep: float, pres: float, freq: float) -> list[int]:
    """Recompute the whole sequence each token and penalise by hand (no engine, no ops)."""
    ids, out = list(prompt), []
    with torch.inference_mode():
        for _ in range(n):
            logits = model(torch.tensor([ids]))[0, -1].double()
            for t in set(ids):  # repetition: prompt and output
                logits[t] = logits[t] / rep if logits[t] > 0 else logits[t] * rep
            for t in set(out):  # presence and frequency: output only
                logits[t] -= pres + freq * out.count(t)
            out.append(int(logits.argmax()))
            ids.append(out[-1])
    return out


def test_penalties_match_recompute_loop(llm, parts):
    _, model, tok = parts
    prompts = [tok.encode("hello world hello world"), tok.encode("yes yes")]
    plain = [o.token_ids for o in llm.generate(prompts, GREEDY)]
    # a random model rarely repeats itself, so negative presence/frequency values (pull seen
    # tokens back) are what makes those penalties visible here
    for rep, pres, freq in [(3.0, 0.0, 0.0), (1.0, -2.0, 0.0), (2.0, 0.5, -1.5)]:
        params = SamplingParams(temperature=0, max_tokens=N, ignore_eos=True, repetition_penalty=rep,
                                presence_penalty=pres, frequency_penalty=freq)
        got = [o.token_ids for o in llm.generate(prompts, params)]
        assert got != plain, f"penalties {(rep, pres, freq)} changed nothing: the test is blind"
        assert got == [penalised_greedy(model, p, N, rep, pres, freq) for p in prompts], (rep, pres, freq)


def test_filters_that_keep_one_token_equal_greedy(llm):
    prompts = ["describe the frame", "hello", "where and when"]
    want = [o.token_ids for o in llm.generate(prompts, GREEDY)]
    for extra in ({"top_k": 1}, {"top_p": 1e-6}, {"min_p": 1.0}):
        params = SamplingParams(temperature=1.3, seed=5, max_tokens=N, ignore_eos=True, **extra)
        assert [o.token_ids for o in llm.generate(prompts, params)] == want, extra
    free = SamplingParams(temperature=1.3, seed=5, max_tokens=N, ignore_eos=True)
    assert [o.token_ids for o in llm.generate(prompts, free)] != want


def test_logprobs_equal_log_softmax_of_recomputed_logits(llm, parts):
    _, model, tok = parts
    prompt = tok.encode("hello there")
    out = llm.generate([prompt], SamplingParams(temperature=0.8, seed=3, max_tokens=5, ignore_eos=True,
                                                logprobs=3))[0]
    with torch.inference_mode():
        logits = model(torch.tensor([prompt + out.token_ids]))[0, len(prompt) - 1:-1]
    logp = logits.double().log_softmax(dim=-1)
    for i, lp in enumerate(out.logprobs):
        assert lp.token_id == out.token_ids[i]
        assert lp.logprob == pytest.approx(float(logp[i, lp.token_id]), abs=1e-4)
        assert [t for t, _ in lp.top] == logp[i].topk(3).indices.tolist()


def test_stop_token_ids_and_end_of_turn(llm):
    tok = llm.tokenizer
    end_of_turn = tok.token_to_id("<SPECIAL_12>")
    assert end_of_turn in llm.engine.eos_token_ids
    full = llm.generate("where and when", GREEDY)[0].token_ids
    stop_at = full[4]
    k = full.index(stop_at)
    params = SamplingParams(temperature=0, max_tokens=N, ignore_eos=True, stop_token_ids=[stop_at])
    rid = llm.engine.add_request("where and when", params)
    req = llm.engine.scheduler.requests[rid]
    assert end_of_turn in req.eos_token_ids and stop_at in req.stop_token_ids
    final = None
    while final is None:
        final = next((o for o in llm.engine.step() if o.req_id == rid and o.finished), None)
    assert final.token_ids == full[:k + 1] and final.finish_reason == "stop"


@pytest.mark.parametrize("thinking", [False, True])
def test_stop_strings_never_leak_while_streaming(llm, thinking):
    base = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True, enable_thinking=thinking)
    full = llm.chat(user("what is the answer"), base)[0]
    text = full.reasoning_content if thinking else full.text
    # a stop string of several characters that the unconstrained output contains
    match = re.search(r"[A-Za-z]{3,}", text[4:])
    assert match, f"no ascii run to stop on in {text!r}"
    stop = match.group(0)[:4]
    cut = text.index(stop)
    params = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True, enable_thinking=thinking,
                            stop=["zz-never", stop])
    shown = ""
    chunks = list(llm.stream_chat(user("what is the answer"), params))
    for c in chunks:
        shown += c.delta_reasoning + c.delta
        assert stop not in shown
    assert chunks[-1].finish_reason == "stop" and chunks[-1].num_generated_tokens < 30
    if thinking:
        assert "".join(c.delta_reasoning for c in chunks) == text[:cut].strip()
        assert chunks[-1].text == ""
    else:
        assert "".join(c.delta for c in chunks) == text[:cut].rstrip() == chunks[-1].text


def test_long_image_prompt_prefilled_in_chunks_equals_one_pass(parts):
    img = Image.fromarray(np.random.default_rng(4).integers(0, 256, (120, 230, 3), dtype=np.uint8))
    conv = [{"role": "user", "content": [{"type": "image", "image": img},
                                         {"type": "text", "text": "what is in the picture " * 3}]}]
    one = make_llm(parts, max_num_seqs=1, max_num_tiles=2)
    chunked = make_llm(parts, max_num_seqs=1, max_num_tiles=2, max_prefill_chunk=7)
    want = one.chat(conv, GREEDY)[0]
    got = chunked.chat(conv, GREEDY)[0]
    n_prompt = got.num_prompt_tokens
    assert n_prompt > 40 and got.token_ids == want.token_ids
    # one step per 7-token chunk (the last one samples the first token), then one per decode
    assert chunked.engine.num_steps == math.ceil(n_prompt / 7) + N - 1
    assert one.engine.num_steps == N
    assert chunked.engine.runner.num_prefill_tokens == n_prompt
