"""The LLM facade: generate/chat/stream_chat shapes, token counting, media sources, limits, errors.

Run: pytest tests/engine/test_llm_api.py
"""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

import nanovl
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.errors import ContextLengthError, InvalidRequestError, QueueFullError
from nanovl.inputs.errors import MediaError
from nanovl.llm import BUNDLED_MODEL, LLM
from nanovl.sampling_params import SamplingParams
from nanovl.testing.random_checkpoint import write_random_text_checkpoint, write_random_vl_checkpoint
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer

GREEDY = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_llm")
    tok_dir = build_tiny_tokenizer(root / "tok")
    vl = write_random_vl_checkpoint(root / "vl", tokenizer_dir=tok_dir, overrides={"llm_config": {"vocab_size": 512}})
    text = write_random_text_checkpoint(root / "text", tokenizer_dir=tok_dir, overrides={"vocab_size": 512})
    img = root / "pic.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (90, 200, 3), dtype=np.uint8)).save(img)
    return vl, text, img


@pytest.fixture(scope="module")
def llm(paths):
    vl, _, _ = paths
    engine = LLMEngine(EngineConfig(model=str(vl), max_num_seqs=3, max_waiting=4, max_model_len=300),
                       model=nanovl.load_model(vl), tokenizer=Tokenizer.from_dir(vl))
    return LLM(engine=engine)


def user(content) -> list[dict]:
    return [{"role": "user", "content": content}]


def test_generate_accepts_text_and_token_prompts(llm):
    one = llm.generate("hello world", GREEDY)
    many = llm.generate(["hello world", "yes", "who are you"], GREEDY)
    ids = llm.tokenizer.encode("hello world")
    by_ids = llm.generate([ids], GREEDY)
    single_ids = llm.generate(ids, GREEDY)
    assert len(one) == 1 and len(many) == 3 and all(o.finished for o in many)
    assert one[0].token_ids == many[0].token_ids == by_ids[0].token_ids == single_ids[0].token_ids
    assert many[0].num_prompt_tokens == len(ids) and many[0].num_generated_tokens == 6
    assert many[0].metrics.ttft is not None and many[0].metrics.e2e_latency >= many[0].metrics.ttft


def test_chat_batch_and_stream(llm):
    convs = [user("hello"), user("describe the frame"), user("yes /no_think")]
    outs = llm.chat(convs, GREEDY)
    assert [o.token_ids for o in outs] == [llm.chat(c, GREEDY)[0].token_ids for c in convs]
    chunks = list(llm.stream_chat(convs[1], GREEDY))
    assert "".join(c.delta for c in chunks) == outs[1].text
    assert "".join(c.delta_reasoning for c in chunks) == outs[1].reasoning_content
    assert [len(c.token_ids) for c in chunks] == list(range(1, 7))


def test_raw_prompt_stream_equals_generate(llm):
    final = llm.generate("the quick brown fox", GREEDY)[0]
    chunks = list(llm.stream("the quick brown fox", GREEDY))
    assert chunks[-1].finished and not any(c.finished for c in chunks[:-1])
    assert "".join(c.delta for c in chunks) == final.text and chunks[-1].token_ids == final.token_ids
    unread = llm.stream("never read", GREEDY)  # made but never iterated: nothing enters the engine
    del unread
    assert not llm.engine.has_unfinished_requests()


def test_closing_a_stream_aborts(llm):
    stream = llm.stream_chat(user("hello"), SamplingParams(temperature=0, max_tokens=50, ignore_eos=True))
    next(stream), next(stream)
    stream.close()
    assert not llm.engine.has_unfinished_requests()
    assert llm.engine.scheduler.cache.num_free_slots == 3


def test_count_tokens_and_media_sources(llm, paths):
    _, _, img = paths
    raw = img.read_bytes()
    uri = "data:image/png;base64," + base64.b64encode(raw).decode()
    sources = [{"type": "image", "image": Image.open(img)}, {"type": "image_url", "image_url": {"url": str(img)}},
               {"type": "image_url", "image_url": {"url": img.as_uri()}}, {"type": "image_url", "image_url": uri}]
    counts = {llm.count_tokens(user([s, {"type": "text", "text": "what?"}])) for s in sources}
    assert len(counts) == 1
    processed = llm.processor.process_chat(user([sources[0], {"type": "text", "text": "what?"}]))
    item = processed.mm_input.items[0]
    assert item.length == llm.image_token_count(200, 90) == item.pixel_values.shape[0] * 16 + 2
    out = llm.chat(user([sources[1], {"type": "text", "text": "what?"}]), GREEDY)[0]
    assert out.num_prompt_tokens == counts.pop()
    with pytest.raises(MediaError, match="not fetched"):
        llm.count_tokens(user([{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]))
    with pytest.raises(MediaError):
        llm.count_tokens(user([{"type": "image_url", "image_url": {"url": str(img) + ".missing"}}]))


def test_logprobs(llm):
    out = llm.generate("hello", SamplingParams(temperature=0, max_tokens=4, ignore_eos=True, logprobs=2))[0]
    assert len(out.logprobs) == 4
    for tok, lp in zip(out.token_ids, out.logprobs):
        assert lp.token_id == tok and lp.logprob <= 0 and len(lp.top) == 2
        assert lp.top[0][0] == tok and lp.top[0][1] == pytest.approx(lp.logprob)
    assert llm.generate("hello", GREEDY)[0].logprobs is None


def test_bounded_queue(llm):
    engine = llm.engine
    ids = [engine.add_request(p, GREEDY) for p in ("a", "b", "c", "d")]
    with pytest.raises(QueueFullError, match="waiting queue is full"):
        engine.add_request("e", GREEDY)
    for rid in ids:
        engine.abort(rid)
    engine.step()
    assert not engine.has_unfinished_requests()
    # the offline API feeds a batch larger than slots + queue as room frees up
    prompts = ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
    outs = llm.generate(prompts, GREEDY)
    assert [o.token_ids for o in outs] == [llm.generate(p, GREEDY)[0].token_ids for p in prompts]


def test_interleaved_streams_and_generate_share_the_engine(llm):
    convs = [user("hello"), user("describe the frame"), user("who")]
    want = [o.token_ids for o in llm.chat(convs, GREEDY)]
    a, b = llm.stream_chat(convs[0], GREEDY), llm.stream_chat(convs[1], GREEDY)
    got_a, got_b = [next(a)], [next(b)]
    # a generate() call steps the engine for everyone while both streams are open
    assert llm.chat(convs[2], GREEDY)[0].token_ids == want[2]
    for x, y in zip(a, b):
        got_a.append(x)
        got_b.append(y)
    got_a += list(a)
    got_b += list(b)
    for chunks, tokens in ((got_a, want[0]), (got_b, want[1])):
        assert chunks[-1].finished and chunks[-1].token_ids == tokens
        assert [len(c.token_ids) for c in chunks] == list(range(1, len(tokens) + 1))
    assert not llm.engine.has_unfinished_requests()


def test_limits_raise_client_errors(llm):
    with pytest.raises(ContextLengthError, match="max_model_len=300"):
        llm.generate([[20] * 300], GREEDY)
    with pytest.raises(InvalidRequestError, match=r"\[0, 512\)"):
        llm.generate([[5, 512]], GREEDY)
    with pytest.raises(InvalidRequestError, match="role"):
        llm.chat([{"role": "robot", "content": "hi"}], GREEDY)
    with pytest.raises(InvalidRequestError, match="markers"):
        llm.chat(user("I typed <image> myself"), GREEDY)
    out = llm.generate([[20] * 290], SamplingParams(temperature=0, max_tokens=50, ignore_eos=True))[0]
    assert out.finish_reason == "length" and out.num_generated_tokens == 10


def test_constructor_options(paths):
    vl, text, _ = paths
    with pytest.raises(ValueError, match="unknown engine option"):
        LLM(vl, max_num_seq=4)
    with pytest.raises(ValueError, match="max_num_seqs"):
        EngineConfig(max_num_seqs=0)
    if not (BUNDLED_MODEL / "config.json").is_file():
        with pytest.raises(ValueError, match="bundled tiny model"):
            LLM()
    text_llm = LLM(text, max_num_seqs=2, dtype="float32", device="cpu")
    assert text_llm.chat(user("hello"), GREEDY)[0].num_generated_tokens == 6
    with pytest.raises(InvalidRequestError, match="text-only"):
        text_llm.chat(user([{"type": "image", "image": Image.new("RGB", (32, 32))}]), GREEDY)


def test_raw_completions_keep_their_text_exactly(llm):
    # no chat template, no thought to split off: the text is what the tokens decode to, spaces included
    out = llm.generate("hello", GREEDY)[0]
    assert out.text == llm.tokenizer.decode(out.token_ids) and out.reasoning_content is None
    assert "".join(o.delta for o in llm.stream("hello", GREEDY)) == out.text


def test_empty_and_mistyped_inputs_are_clear_errors(llm):
    assert llm.chat([], GREEDY) == [] and llm.generate([], GREEDY) == []
    with pytest.raises(InvalidRequestError, match="messages must not be empty"):
        llm.chat([user("hi"), []], GREEDY)
    with pytest.raises(InvalidRequestError, match="sampling_params must be a SamplingParams"):
        llm.chat(user("hi"), {"max_tokens": 4})
    with pytest.raises(InvalidRequestError, match="sampling_params must be a SamplingParams"):
        list(llm.stream_chat(user("hi"), ["greedy"]))
    with pytest.raises(InvalidRequestError, match="prompts must be"):
        llm.generate(None, GREEDY)
    with pytest.raises(InvalidRequestError, match="prompts must be"):
        llm.generate(np.array([5, 6, 7]), GREEDY)
    with pytest.raises(InvalidRequestError, match="prefix must be a PrefixHandle"):
        llm.chat(user("hi"), GREEDY, prefix="abc")
    with pytest.raises(ValueError, match="max_num_tiles"):
        llm.image_token_count(100, 100, 0)
    with pytest.raises(ValueError, match="not NoneType"):
        nanovl.load_model(None)
    for field in ("stop", "stop_token_ids"):
        with pytest.raises(ValueError, match=field):
            SamplingParams(**{field: 5})
    # numpy token ids are token ids
    ids = llm.tokenizer.encode("hello")
    assert llm.generate([np.array(ids, dtype=np.int64).tolist()], GREEDY)[0].token_ids == \
        llm.generate([[np.int64(t) for t in ids]], GREEDY)[0].token_ids


def test_threads_sharing_one_llm_take_turns(llm):
    # the engine is single-threaded: two threads calling chat/generate at once each get their own,
    # correct answers (before: KeyErrors inside the scheduler, empty forwards)
    import threading

    prompts = {"a": "hello world", "b": "who are you"}
    want = {k: llm.generate(p, GREEDY)[0].token_ids for k, p in prompts.items()}
    got, errors = {k: [] for k in prompts}, []

    def work(key: str) -> None:
        try:
            for _ in range(4):
                got[key].append(llm.generate(prompts[key], GREEDY)[0].token_ids)
                got[key].append(llm.chat(user(prompts[key]), GREEDY)[0].token_ids)
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in prompts]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert errors == []
    chat_want = {k: llm.chat(user(p), GREEDY)[0].token_ids for k, p in prompts.items()}
    for k in prompts:
        assert got[k] == [want[k], chat_want[k]] * 4


def test_generate_as_completed_reads_lazily_and_matches_generate(llm):
    # 12 requests through 3 slots and a queue of 4: the source is read only as places free up,
    # every output equals generate's, and a refused request comes back as its exception
    prompts = [f"item {k} " * (1 + k % 4) for k in range(12)]
    params = [SamplingParams(temperature=0, max_tokens=2 + k % 5, ignore_eos=True) for k in range(12)]
    want = [o.token_ids for o in llm.generate(prompts, params)]
    read = []

    def source():
        for k, (p, sp) in enumerate(zip(prompts, params)):
            read.append(k)
            yield ("word " * 400 if k == 5 else p), sp

    got, order = {}, []
    stream = llm.generate_as_completed(source())
    first = next(stream)
    assert len(read) <= 3 + 4 + 1, "the whole source was read before the first output"
    for k, out in [first, *stream]:
        order.append(k)
        got[k] = out
    assert isinstance(got[5], ContextLengthError)
    assert {k: o.token_ids for k, o in got.items() if k != 5} == {k: w for k, w in enumerate(want) if k != 5}
    assert sorted(order) == list(range(12)) and order != sorted(order), "outputs should come as they finish"
    assert not llm.engine.has_unfinished_requests()


def test_closing_generate_as_completed_aborts_the_rest(llm):
    stream = llm.generate_as_completed(("tick " * 3, SamplingParams(max_tokens=50, ignore_eos=True)) for _ in range(6))
    next(stream)
    stream.close()
    assert not llm.engine.has_unfinished_requests()
    assert llm.generate("a", GREEDY)[0].token_ids == llm.generate("a", GREEDY)[0].token_ids


def test_generate_as_completed_keeps_at_most_max_in_flight(llm):
    read, outputs = [], 0

    def source():
        for k in range(30):
            read.append(k)
            yield f"n {k}", SamplingParams(temperature=0, max_tokens=1 + k % 3, ignore_eos=True)

    for _ in llm.generate_as_completed(source(), max_in_flight=4):
        outputs += 1
        # at most 4 in the engine, plus the one read and held while the engine was full
        assert len(read) - outputs <= 4
    assert outputs == 30
