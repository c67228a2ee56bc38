"""Thinking budget, /no_think, stop strings and seeds through the LLM API on a tiny random VL model.

Run: pytest tests/engine/test_engine_reasoning.py
"""
from __future__ import annotations

import re

import pytest

import nanovl
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.llm import LLM
from nanovl.sampling_params import SamplingParams
from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_reasoning")
    tok_dir = build_tiny_tokenizer(root / "tok")
    ckpt = write_random_vl_checkpoint(root / "ckpt", tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})
    engine = LLMEngine(EngineConfig(model=str(ckpt), max_num_seqs=4), model=nanovl.load_model(ckpt),
                       tokenizer=Tokenizer.from_dir(ckpt))
    return LLM(engine=engine)


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("budget", [0, 3, 7])
def test_thinking_budget_caps_reasoning_exactly(llm, budget):
    params = SamplingParams(temperature=0, max_tokens=20, ignore_eos=True, thinking_budget=budget)
    out = llm.chat(user("hello"), params)[0]
    free = llm.chat(user("hello"), SamplingParams(temperature=0, max_tokens=20, ignore_eos=True))[0]
    tok = llm.tokenizer
    close = tok.encode("\n</think>\n")
    end = tok.think_end_token_id
    # without a budget this prompt reasons past every budget tested
    assert end not in free.token_ids[:budget + 1]
    assert out.token_ids[:budget] == free.token_ids[:budget]
    assert out.token_ids[budget:budget + len(close)] == close
    assert out.token_ids.count(end) >= 1 and out.token_ids.index(end) == budget + close.index(end)
    assert out.reasoning_content == tok.decode(out.token_ids[:budget], skip_special_tokens=True).strip()
    answer = tok.decode(out.token_ids[budget + len(close):], skip_special_tokens=True).strip()
    assert out.text == answer and out.text


def test_budget_with_streaming_split_matches_final(llm):
    params = SamplingParams(temperature=0, max_tokens=16, ignore_eos=True, thinking_budget=4)
    final = llm.chat(user("hello"), params)[0]
    chunks = list(llm.stream_chat(user("hello"), params))
    assert chunks[-1].finished and sum(not c.finished for c in chunks) == len(chunks) - 1
    assert "".join(c.delta_reasoning for c in chunks) == final.reasoning_content
    assert "".join(c.delta for c in chunks) == final.text
    assert chunks[-1].token_ids == final.token_ids


def test_no_think_gives_no_reasoning(llm):
    params = SamplingParams(temperature=0, max_tokens=12, ignore_eos=True)
    processed = llm.processor.process_chat(user("hello /no_think"))
    assert processed.prompt_text.endswith("<think></think>") and processed.enable_thinking is False
    out = llm.chat(user("hello /no_think"), params)[0]
    assert out.reasoning_content is None
    assert out.text == llm.tokenizer.decode(out.token_ids, skip_special_tokens=True).strip()
    flag = llm.chat(user("hello"), SamplingParams(temperature=0, max_tokens=12, ignore_eos=True,
                                                  enable_thinking=False))[0]
    assert flag.reasoning_content is None and flag.token_ids == out.token_ids


def test_stop_strings_never_reach_output(llm):
    base = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True, enable_thinking=False)
    full = llm.chat(user("what is the answer"), base)[0].text
    match = re.search(r"[A-Za-z]{3}", full[6:])
    assert match, f"no ascii run to stop on in {full!r}"
    stop = match.group(0)
    cut = full.index(stop)
    for include in (False, True):
        params = SamplingParams(temperature=0, max_tokens=30, ignore_eos=True, enable_thinking=False,
                                stop=[stop, "zzzz-never"], include_stop_str_in_output=include)
        out = llm.chat(user("what is the answer"), params)[0]
        assert out.finish_reason == "stop"
        if include:
            assert out.text == full[:cut + len(stop)].strip()
        else:
            assert stop not in out.text and out.text == full[:cut].rstrip()
        assert out.num_generated_tokens < 30


def test_seed_reproduces_alone_and_in_batch(llm):
    seeded = SamplingParams(temperature=1.0, seed=1234, max_tokens=12, ignore_eos=True)
    alone = llm.generate(["hello world"], seeded)[0].token_ids
    others = [SamplingParams(temperature=1.0, seed=s, max_tokens=12, ignore_eos=True) for s in (1, 2)]
    others.append(SamplingParams(temperature=0.9, max_tokens=12, ignore_eos=True))
    batch = llm.generate(["describe", "hello world", "who are you", "yes"], [others[0], seeded, others[1], others[2]])
    assert batch[1].token_ids == alone
    assert llm.generate(["hello world"], seeded)[0].token_ids == alone
    other_seed = SamplingParams(temperature=1.0, seed=99, max_tokens=12, ignore_eos=True)
    assert llm.generate(["hello world"], other_seed)[0].token_ids != alone


@pytest.mark.parametrize("max_tokens, budget", [(8, 6), (5, 4), (20, 3)])
def test_logprobs_stay_one_per_token_when_the_forced_close_is_cut(llm, max_tokens, budget):
    # the forced "\n</think>\n" is several tokens at once; max_tokens can end the request partway
    # through it, and its dropped tokens' logprobs stayed behind (8 tokens, 9 logprobs)
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True, thinking_budget=budget,
                            logprobs=3)
    out = llm.chat(user("hello"), params)[0]
    assert len(out.token_ids) == max_tokens
    assert [lp.token_id for lp in out.logprobs] == out.token_ids
    # sampled tokens carry their alternatives; forced ones were never drawn, so they have none
    assert all(len(lp.top) == 3 for lp in out.logprobs[:budget])


@pytest.mark.parametrize("include", [False, True])
def test_the_token_that_ends_a_request_stays_out_of_its_text(llm, include):
    # vLLM's rule: a stop id or EOS ends the text before it unless include_stop_str_in_output
    free = llm.generate("hello there", SamplingParams(temperature=0, max_tokens=8, ignore_eos=True))[0]
    stop = free.token_ids[3]
    first = free.token_ids.index(stop)
    params = SamplingParams(temperature=0, max_tokens=8, stop_token_ids=[stop], include_stop_str_in_output=include,
                            skip_special_tokens=False)
    out = llm.generate("hello there", params)[0]
    assert out.finish_reason == "stop" and out.token_ids == free.token_ids[:first + 1]
    kept = out.token_ids if include else out.token_ids[:-1]
    assert out.text == llm.tokenizer.decode(kept)
