"""The engine's decode by CUDA-graph replay (EngineConfig.cuda_graphs), with and without the decode
lookahead (engine/lookahead.py), against its eager decode, on the
lent GPU (`pytest tests/gpu -m gpu`): a tiny random VL checkpoint, requests of different lengths
over fewer slots than requests, so rows free up, are reused, and prefill beside decoding ones.
fp32, so that the two paths' different kernels (a bucket of 4 rows against 1 row eagerly, say)
cannot tip a greedy choice. The same path on the CPU, with the replay run eagerly:
tests/engine/test_engine_cuda_graphs.py."""
from __future__ import annotations

import pytest
import torch

import nanovl
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.ops import kernel_failures
from nanovl.sampling_params import SamplingParams
from nanovl.testing.engine_runs import run_to_completion, write_tiny_vl_checkpoint
from nanovl.tokenizer import Tokenizer

pytestmark = pytest.mark.gpu

PROMPTS = ["hi", "what is the answer please", "describe the frame " * 6, "yes", "where and when " * 12,
           "hello world", "who", "how why " * 3]
LENGTHS = [12, 3, 9, 300, 5, 14, 7, 2]  # one row grows past the first K/V capacity reserved
PARAMS = [SamplingParams(temperature=0, max_tokens=n, ignore_eos=True) for n in LENGTHS]


def test_engine_graph_decode_matches_eager(tmp_path):
    ckpt = write_tiny_vl_checkpoint(tmp_path)
    model, tok = nanovl.load_model(ckpt, dtype=torch.float32, device="cuda"), Tokenizer.from_dir(ckpt)
    outs = {}
    # eager; graphs; graphs with the decode lookahead (the long row decodes alone at the end, ahead)
    for graphs, lookahead in ((False, False), (True, False), (True, True)):
        engine = LLMEngine(EngineConfig(model=str(ckpt), device="cuda", dtype="float32", max_num_seqs=4,
                                        cuda_graphs=graphs, decode_lookahead=lookahead), model=model, tokenizer=tok)
        outs[graphs, lookahead] = run_to_completion(engine, PROMPTS, PARAMS)
        if graphs:
            assert engine.runner.num_graph_steps > 50 and engine.runner.num_graph_captures >= 2
        assert (engine.num_lookahead_steps > 200) == lookahead
    assert outs[True, False] == outs[False, False]
    assert outs[True, True] == outs[False, False]
    assert not kernel_failures(), f"kernels fell back to the reference: {kernel_failures()}"


def _with_and_without_lookahead(tmp_path, params: list[SamplingParams]) -> tuple[dict, dict]:
    """The first len(params) prompts through a fresh tiny checkpoint in fp32, lookahead off then on:
    ({lookahead: token ids of each}, {lookahead: steps that went ahead})."""
    ckpt = write_tiny_vl_checkpoint(tmp_path)
    model, tok = nanovl.load_model(ckpt, dtype=torch.float32, device="cuda"), Tokenizer.from_dir(ckpt)
    outs, ahead = {}, {}
    for lookahead in (False, True):
        engine = LLMEngine(EngineConfig(model=str(ckpt), device="cuda", dtype="float32", max_num_seqs=4,
                                        decode_lookahead=lookahead), model=model, tokenizer=tok)
        outs[lookahead] = run_to_completion(engine, PROMPTS[:len(params)], params)
        ahead[lookahead] = engine.num_lookahead_steps
    return outs, ahead


def test_engine_lookahead_with_drawn_rows_matches_plain_steps(tmp_path):
    # seeded draws with top-p and min-p, and penalties: the sampler runs on the device from pinned
    # copies, and the next step is launched on its ids before the host reads them. (Grammar rows
    # go ahead too; the device machine lacks the structured-output packages, so the CPU tests and
    # test_sampler_masks_on_the_device_equal_the_cpu below cover them.)
    params = [SamplingParams(temperature=0.8, top_p=0.9, seed=1, max_tokens=40, ignore_eos=True),
              SamplingParams(temperature=0, repetition_penalty=1.3, presence_penalty=0.4, max_tokens=40,
                             ignore_eos=True),
              SamplingParams(temperature=1.1, min_p=0.05, seed=2, max_tokens=60, ignore_eos=True)]
    outs, ahead = _with_and_without_lookahead(tmp_path, params)
    assert outs[True] == outs[False]
    assert ahead[False] == 0 and ahead[True] > 30


def test_sampler_masks_on_the_device_equal_the_cpu():
    # the grammar masks, penalties and knobs travel from pinned memory without waiting for the
    # stream: the ids must be those of the same rows sampled on the CPU (greedy rows: exact)
    from nanovl.engine.sampler import Sampler, SamplingRow

    torch.manual_seed(0)
    logits = torch.randn(4, 512)
    allowed = torch.zeros(4, 512, dtype=torch.bool)
    for r in range(4):
        allowed[r, torch.randperm(512)[:20 + r]] = True
    rows = [SamplingRow(SamplingParams(temperature=0, repetition_penalty=1.2 if r % 2 else 1.0),
                        r, [1, 2, 3], [4, 5], allowed[r] if r != 3 else None) for r in range(4)]
    on_cpu = Sampler()(logits, rows).token_ids
    on_gpu = Sampler().draw(logits.cuda(), rows)
    assert on_gpu.is_cuda and on_gpu.tolist() == on_cpu
    assert all(allowed[r, t] for r, t in enumerate(on_cpu[:3]))


def test_engine_lookahead_with_a_grammar_matches_plain_steps(tmp_path):
    # needs the structured-output packages (bench/fetch_device_wheels.sh carries them to the device)
    pytest.importorskip("llguidance")
    pytest.importorskip("jsonschema")
    params = [SamplingParams(temperature=0.9, seed=s, max_tokens=200, response_format={"type": "json_object"})
              for s in (2, 3)] + [SamplingParams(temperature=0, max_tokens=30, ignore_eos=True)]
    outs, ahead = _with_and_without_lookahead(tmp_path, params)
    assert outs[True] == outs[False]
    assert ahead[False] == 0 and ahead[True] > 10
