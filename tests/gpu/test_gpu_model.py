"""Tiny hybrid LM on the GPU: the kernel path matches the reference path, and decode CUDA graphs
match eager decode (run on the lent GPU: `pytest tests/gpu -m gpu`)."""
from __future__ import annotations

import pytest
import torch

from nanovl.engine.cuda_graphs import DecodeCudaGraphs
from nanovl.model.hybrid_lm import NemotronHForCausalLM
from nanovl.model.loader import fuse_projections
from nanovl.model.presets import preset_text_config
from nanovl.model.state import AttentionLayerState, LMState, MambaLayerState
from nanovl.ops import kernel_failures, use_reference_ops

pytestmark = pytest.mark.gpu


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / a.norm()).item()


def _model(dtype: torch.dtype, device: str = "cuda", fused: bool = True, fp8: bool = False) -> NemotronHForCausalLM:
    torch.manual_seed(0)
    lm = NemotronHForCausalLM(preset_text_config("tiny")).to(device, dtype).eval()
    if fp8:  # every projection but lm_head in e4m3, input scales calibrated on one random prompt
        from nanovl.quant.fp8_modules import quantize_projections_fp8

        ids = torch.randint(0, lm.config.vocab_size, (1, 40), device=device)
        with use_reference_ops():
            quantize_projections_fp8(lm, lambda: lm(ids))
    return fuse_projections(lm) if fused else lm  # as load_model builds it on a GPU


@torch.inference_mode()
def run_kernel_path(dtype: torch.dtype, device: str = "cuda", decode_steps: int = 20, fp8: bool = False) -> float:
    """Relative error of the tiny LM's logits (prefill 50 tokens, then decode steps), kernels vs references."""
    lm = _model(dtype, device, fp8=fp8)
    ids = torch.randint(0, lm.config.vocab_size, (2, 50 + decode_steps), device=device)
    outs = []
    for ref in (True, False):
        with use_reference_ops(ref):
            st = lm.new_state(2)
            logits = [lm(ids[:, :50], state=st)]
            logits += [lm(ids[:, t:t + 1], state=st) for t in range(50, 50 + decode_steps)]
            outs.append(torch.cat(logits, 1).float())
    assert not kernel_failures(), f"kernels fell back to the reference: {kernel_failures()}"
    return _rel(outs[0], outs[1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_kernel_path_matches_reference(dtype):
    assert run_kernel_path(dtype) < (3e-3 if dtype == torch.float32 else 3e-2)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["fp32", "bf16"])
def test_fp8_kernel_path_matches_reference(dtype):
    # the FP8 projections: the skinny kernel at decode, the reference's own e4m3 rounding of x
    assert run_kernel_path(dtype, fp8=True) < (3e-3 if dtype == torch.float32 else 3e-2)


@torch.inference_mode()
def test_fp8_decode_graphs_match_eager():
    lm = _model(torch.bfloat16, fp8=True)
    prompt = torch.randint(0, 300, (2, 23), device="cuda")
    graphed = _graph_logits(lm, prompt, 4)
    pool = lm.new_state(2)
    _prefill_rows(lm, pool, list(prompt.split(1)))
    tok, eager = prompt[:, -1], []
    for _ in range(4):
        eager.append(lm(tok[:, None], state=pool)[:, -1].float())
        tok = eager[-1].argmax(-1)
    assert _rel(torch.stack(eager), graphed) < 2e-2
    assert not kernel_failures(), f"kernels fell back to the reference: {kernel_failures()}"


def _put_row(pool: LMState, row: int, one: LMState) -> None:
    for mine, theirs in zip(pool.layers, one.layers):
        if isinstance(mine, AttentionLayerState):
            n = theirs.k.shape[2]
            mine.k[row, :, :n], mine.v[row, :, :n] = theirs.k[0], theirs.v[0]
        elif isinstance(mine, MambaLayerState):
            mine.conv[row], mine.ssm[row] = theirs.conv[0], theirs.ssm[0]
    pool.seq_lens[row] = one.seq_lens[0]


def _prefill_rows(lm: NemotronHForCausalLM, pool: LMState, prompts: list[torch.Tensor]) -> None:
    """Empty `pool`, then prefill row i with prompts[i] [1, T_i] on its own (rows of different lengths)."""
    pool.seq_lens.zero_()
    for st in pool.layers:
        if st is not None:
            for t in st.tensors().values():
                t.zero_()
    for row, prompt in enumerate(prompts):
        one = lm.new_state(1)
        lm(prompt, state=one)
        _put_row(pool, row, one)


@torch.inference_mode()
def test_decode_graphs_match_eager():
    lm = _model(torch.bfloat16)
    pool = lm.new_state(4)
    graphs = DecodeCudaGraphs(lm, pool, max_seq_len=128, buckets=(1, 2, 4))
    graphs.capture()
    # rows of different lengths: prefill each row on its own, then decode rows 0..2 (bucket 4)
    _prefill_rows(lm, pool, [torch.randint(0, 300, (1, n), device="cuda") for n in (5, 17, 9, 30)])
    eager = pool.snapshot()
    eager_rows = eager.select([0, 1, 2])
    row3 = pool.select([3])
    tok = torch.randint(0, 300, (3,), device="cuda")
    for _ in range(4):
        got = graphs.step(tok)
        want = lm(tok[:, None], state=eager_rows)[:, -1]
        assert _rel(want.float(), got.float()) < 2e-2
        tok = want.argmax(-1)
    assert torch.equal(pool.seq_lens[:3], eager_rows.seq_lens)
    kept = pool.select([3])
    for a, b in zip(row3.layers, kept.layers):
        if a is not None:
            for name in a.tensors():
                assert torch.equal(getattr(a, name), getattr(b, name)), f"padding row changed ({name})"
    # free padding rows restart from length 0 each step, so they never run past the KV capacity
    for _ in range(3):
        graphs.step(tok, preserve_padding=False)
    assert int(pool.seq_lens[3]) == 1
    assert not kernel_failures(), f"kernels fell back to the reference: {kernel_failures()}"


def _graph_logits(lm: NemotronHForCausalLM, prompt: torch.Tensor, steps: int) -> torch.Tensor:
    """Prefill `prompt` [B, T] row by row into a pool, then `steps` greedy CUDA-graph decode steps' logits."""
    pool = lm.new_state(prompt.shape[0])
    graphs = DecodeCudaGraphs(lm, pool, max_seq_len=128, buckets=(prompt.shape[0],))
    graphs.capture()
    _prefill_rows(lm, pool, list(prompt.split(1)))
    tok, out = prompt[:, -1], []
    for _ in range(steps):
        out.append(graphs.step(tok).float())
        tok = out[-1].argmax(-1)
    return torch.stack(out)


@pytest.mark.parametrize("mode", ["1", "2", "auto"])  # eager and bounded release, by batch (nanovl/ops/pdl.py)
@torch.inference_mode()
def test_pdl_decode_graphs_equal_plain_ones(monkeypatch, mode):
    # PDL changes when a kernel may start, never what it computes: a race (a read before the
    # previous kernel's write) would show as logits that differ from the plain launches'
    from nanovl.ops.pdl import device_can

    lm = _model(torch.bfloat16)
    prompt = torch.randint(0, 300, (2, 23), device="cuda")
    for bsz in (1, 2):  # the one-row GEMV and the 2..16-row dot kernel
        monkeypatch.setenv("NANOVL_PDL", "0")
        plain = _graph_logits(lm, prompt[:bsz], 6)
        monkeypatch.setenv("NANOVL_PDL", mode)
        if not device_can(prompt):
            pytest.skip("this GPU or Triton has no programmatic dependent launch (sm_90+, Triton >= 3.3)")
        assert torch.equal(_graph_logits(lm, prompt[:bsz], 6), plain), f"batch {bsz}"
    assert not kernel_failures(), f"kernels fell back to the reference: {kernel_failures()}"


@pytest.mark.parametrize("mib", ["0.001", "16"])  # a few lines, and more than most weights of the tiny LM
@torch.inference_mode()
def test_l2_prefetch_decode_graphs_equal_plain_ones(monkeypatch, mib):
    # the batch-1 GEMV's prefetch of the next weight is a hint: the logits must not move by a bit,
    # and no prefetch may fault (an address past a weight's end would kill the context)
    from nanovl.ops.linear import l2_prefetch

    lm = _model(torch.bfloat16)
    prompt = torch.randint(0, 300, (1, 23), device="cuda")
    monkeypatch.setenv("NANOVL_L2_PREFETCH_MB", "0")
    plain = _graph_logits(lm, prompt, 6)
    monkeypatch.setenv("NANOVL_L2_PREFETCH_MB", mib)
    warm = l2_prefetch.next_lines(lm.backbone.layers[0].mixer.in_proj.weight)
    assert warm is not None and warm[1] > 0  # the chain is set and this run prefetches
    assert torch.equal(_graph_logits(lm, prompt, 6), plain)
    torch.cuda.synchronize()
    assert not kernel_failures(), f"kernels fell back to the reference: {kernel_failures()}"


@torch.inference_mode()
def test_fused_qkv_decode_graphs_match_the_three_projections():
    # one GEMV over the fused q/k/v weight against three (their autotuned blockings differ: close, not
    # equal); one step, since a greedy token picked from a near tie could send the two apart
    prompt = torch.randint(0, 300, (2, 23), device="cuda")
    fused = _graph_logits(_model(torch.bfloat16), prompt, 1)
    plain = _graph_logits(_model(torch.bfloat16, fused=False), prompt, 1)
    assert _rel(plain, fused) < 2e-2
    assert not kernel_failures(), f"kernels fell back to the reference: {kernel_failures()}"


if __name__ == "__main__":  # TRITON_INTERPRET=1: the tiny LM's kernel path on the CPU (bench/interp_check.sh)
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from test_gpu_ops import _patch_interpreter

    if not torch.cuda.is_available():
        _patch_interpreter()
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    # fp16 stands in for bf16 on the CPU (see test_gpu_ops)
    for dt in (torch.float32, torch.bfloat16 if dev == "cuda" else torch.float16):
        print(f"tiny LM kernels vs reference {str(dt):15s} rel err {run_kernel_path(dt, dev, decode_steps=6):.2e}",
              flush=True)
        print(f"tiny FP8 LM kernels vs reference {str(dt):15s} rel err "
              f"{run_kernel_path(dt, dev, decode_steps=6, fp8=True):.2e}", flush=True)
