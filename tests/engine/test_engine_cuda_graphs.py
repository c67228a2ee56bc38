"""The engine's CUDA-graph decode path (EngineConfig.cuda_graphs; engine/model_runner.py) on the CPU.

A CUDA graph cannot be captured here, so `FakeGraphs` (nanovl/testing/fake_graphs.py) runs the
capture and the replay eagerly. Outputs equal to eager decoding then mean the runner and
`step_rows` keep every live row intact.
The real graphs on a GPU: tests/gpu/test_gpu_model.py and tests/gpu/test_gpu_engine.py.
"""
from __future__ import annotations

import pytest
import torch

import nanovl
from nanovl.engine import model_runner
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.model.state import AttentionLayerState
from nanovl.sampling_params import SamplingParams
from nanovl.testing.engine_runs import run_to_completion, write_tiny_vl_checkpoint
from nanovl.testing.fake_graphs import FakeGraphs
from nanovl.tokenizer import Tokenizer


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ckpt = write_tiny_vl_checkpoint(tmp_path_factory.mktemp("tiny_vl_graphs"))
    return ckpt, nanovl.load_model(ckpt), Tokenizer.from_dir(ckpt)


def _engine(tiny, graphs: bool, monkeypatch, **kw) -> LLMEngine:
    ckpt, model, tok = tiny
    engine = LLMEngine(EngineConfig(model=str(ckpt), **kw), model=model, tokenizer=tok)
    if graphs:
        monkeypatch.setattr(model_runner, "DecodeCudaGraphs", FakeGraphs)
        engine.runner.use_cuda_graphs = True  # on the CPU the config alone keeps it off
    return engine


PROMPTS = ["hi", "what is the answer please", "describe the frame " * 6, "yes", "where and when " * 12,
           "hello world", "who", "how why " * 3]


def _run(engine: LLMEngine, lengths: list[int]) -> list[list[int]]:
    # different lengths: requests finish at different steps, slots free up and are reused, and
    # later arrivals prefill while others decode
    return run_to_completion(engine, PROMPTS[:len(lengths)],
                             [SamplingParams(temperature=0, max_tokens=n, ignore_eos=True) for n in lengths])


@torch.inference_mode()
def test_graph_decode_gives_the_eager_tokens(tiny, monkeypatch):
    lengths = [12, 3, 9, 20, 5, 14, 7, 2]
    eager = _run(_engine(tiny, False, monkeypatch, max_num_seqs=4), lengths)
    engine = _engine(tiny, True, monkeypatch, max_num_seqs=4)
    assert _run(engine, lengths) == eager
    runner = engine.runner
    assert runner.num_graph_steps > 10 and runner.num_graph_captures >= 1


@torch.inference_mode()
def test_growing_past_the_graph_capacity_recaptures(tiny, monkeypatch):
    monkeypatch.setattr(model_runner, "MIN_GRAPH_CAPACITY", 16)
    lengths = [40, 3, 30, 2]
    eager = _run(_engine(tiny, False, monkeypatch, max_num_seqs=2), lengths)
    engine = _engine(tiny, True, monkeypatch, max_num_seqs=2)
    assert _run(engine, lengths) == eager
    assert engine.runner.num_graph_captures >= 2


@torch.inference_mode()
def test_rows_of_the_bucket_that_are_not_decoding_keep_their_state(tiny, monkeypatch):
    # slots 1 and 3 hold requests that do not decode this step: the replay of bucket 4 steps them
    # on token 0, and step_rows must put their recurrent state and length back
    runner = _engine(tiny, True, monkeypatch, max_num_seqs=4).runner
    plain = _engine(tiny, False, monkeypatch, max_num_seqs=4).runner
    for r in (runner, plain):
        for slot in range(4):
            r.start_request(f"r{slot}", slot, [5 + slot, 6, 7])
            r.prefill(f"r{slot}", slot, 0, [5 + slot, 6, 7])
    before = runner.pool.snapshot()
    logits = runner.decode([2, 0], [9, 11])
    assert runner.num_graph_steps == 1
    torch.testing.assert_close(logits, plain.decode([2, 0], [9, 11]), atol=1e-5, rtol=1e-5)
    for mine, theirs in zip(runner.pool.layers, before.layers):
        if mine is not None and not isinstance(mine, AttentionLayerState):
            for name, t in mine.tensors().items():
                assert torch.equal(t[[1, 3]], getattr(theirs, name)[[1, 3]]), name
    assert runner.pool.seq_lens.tolist() == [4, 3, 4, 3]
    # and the pool matches the eagerly decoded one wherever it is read: K/V up to each row's length
    # (the held rows took one write at their length, which their next step overwrites first)
    lens = plain.pool.seq_lens.tolist()
    for mine, theirs in zip(runner.pool.layers, plain.pool.layers):
        if isinstance(mine, AttentionLayerState):
            for r, n in enumerate(lens):
                assert torch.allclose(mine.k[r, :, :n], theirs.k[r, :, :n], atol=1e-6)
                assert torch.allclose(mine.v[r, :, :n], theirs.v[r, :, :n], atol=1e-6)
        elif mine is not None:
            assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(mine.tensors().values(),
                                                                          theirs.tensors().values()))


def test_engine_config_checks_the_switch():
    with pytest.raises(ValueError, match="cuda_graphs must be a bool"):
        EngineConfig(cuda_graphs="yes")


@torch.inference_mode()
def test_capture_keeps_the_rows_it_is_told_to_and_no_more(tiny):
    # the warm-up steps move the rows below the largest bucket; `rows` narrows what is copied aside
    # (a free slot is reset before its next request), so a full pool's state is not copied at once
    from nanovl.engine.cuda_graphs import _recurrent

    _, model, _ = tiny
    lm = model.language_model
    state = lm.new_state(4)
    for t in _recurrent(state):
        t.copy_(torch.randn_like(t))
    before = [t.clone() for t in _recurrent(state)]
    FakeGraphs(lm, state, max_seq_len=32, buckets=(1, 2, 4)).capture(preserve_state=True, rows=[1, 3])
    for now, old in zip(_recurrent(state), before):
        assert torch.equal(now[[1, 3]], old[[1, 3]])
    assert not all(torch.equal(now[[0, 2]], old[[0, 2]]) for now, old in zip(_recurrent(state), before))
    before = [t.clone() for t in _recurrent(state)]
    FakeGraphs(lm, state, max_seq_len=32, buckets=(1, 2, 4)).capture(preserve_state=True)  # every row
    assert all(torch.equal(now, old) for now, old in zip(_recurrent(state), before))
