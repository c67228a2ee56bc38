"""The batch-1 GEMV's L2 prefetch chain (host side, CPU): the decode order it follows is the order a
decode step really runs its projections, each weight names the next (the last the first), and the
env switch sizes or disables it. Bit-equality of results with it on is a GPU test (test_gpu_model)."""
from __future__ import annotations

import pytest
import torch

from nanovl.bench.lm import build_model
from nanovl.model import attention as attention_module
from nanovl.model import linear as linear_module
from nanovl.ops.linear import l2_prefetch


@pytest.fixture
def chain():
    l2_prefetch.clear_chain()
    yield l2_prefetch
    l2_prefetch.clear_chain()


@pytest.mark.parametrize("fused", [False, True], ids=["three-qkv", "fused-qkv"])
@torch.inference_mode()
def test_decode_order_is_the_order_a_step_runs(monkeypatch, fused):
    lm = build_model("tiny", torch.device("cpu"), torch.float32).language_model
    if fused:
        for block in lm.backbone.layers:
            if isinstance(block.mixer, attention_module.Attention):
                block.mixer.fuse_qkv()
    seen = []

    def recording(fn):
        def wrapped(x, weight, bias=None):
            seen.append(weight.data_ptr())
            return fn(x, weight, bias)
        return wrapped

    monkeypatch.setattr(linear_module, "linear", recording(linear_module.linear))
    monkeypatch.setattr(linear_module, "linear_relu_square", recording(linear_module.linear_relu_square))
    monkeypatch.setattr(attention_module, "linear", recording(attention_module.linear))
    state = lm.new_state(1)
    lm(torch.tensor([[3, 4, 5]]), state=state)
    seen.clear()
    lm(torch.tensor([[6]]), state=state, logits_to_keep=1)  # one decode step
    assert seen == [w.data_ptr() for w in lm.decode_projection_weights()]
    n_attention = sum(isinstance(b.mixer, attention_module.Attention) for b in lm.backbone.layers)
    assert len(seen) == 2 * len(lm.backbone.layers) + 1 + (0 if fused else 2 * n_attention)


def test_each_weight_warms_the_next_and_the_last_the_first(chain, monkeypatch):
    w = [torch.zeros(64, 8, dtype=torch.bfloat16), torch.zeros(4, 8), torch.zeros(300, 4)]
    chain.set_chain(w)
    monkeypatch.setenv("NANOVL_L2_PREFETCH_MB", "0")
    assert chain.next_lines(w[0]) is None  # off by default
    monkeypatch.setenv("NANOVL_L2_PREFETCH_MB", "1")
    nxt, lines = chain.next_lines(w[0])
    assert nxt.dtype == torch.uint8 and nxt.data_ptr() == w[1].data_ptr() and lines == 128 // 128
    nxt, lines = chain.next_lines(w[2])  # the step's last projection warms the next step's first
    assert nxt.data_ptr() == w[0].data_ptr() and lines == 64 * 8 * 2 // 128
    assert chain.next_lines(torch.zeros(3)) is None  # not in the chain
    monkeypatch.setenv("NANOVL_L2_PREFETCH_MB", str(256 / (1 << 20)))  # fewer bytes than the next weight
    assert chain.next_lines(w[1])[1] == 2


def test_weights_smaller_than_a_line_or_not_contiguous_are_skipped(chain, monkeypatch):
    monkeypatch.setenv("NANOVL_L2_PREFETCH_MB", "1")
    small, strided, big = torch.zeros(64), torch.zeros(8, 64).T, torch.zeros(64, 64)
    chain.set_chain([big, strided, small])
    assert chain.next_lines(big)[0].data_ptr() == small.data_ptr()  # the transposed one left out
    assert chain.next_lines(small)[0].data_ptr() == big.data_ptr()
    tiny = torch.zeros(4)
    chain.set_chain([tiny, tiny])
    assert chain.next_lines(tiny) is None  # 16 bytes: not a whole line to warm


def test_a_bad_size_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("NANOVL_L2_PREFETCH_MB", "lots")
    with pytest.raises(ValueError, match="NANOVL_L2_PREFETCH_MB"):
        l2_prefetch.prefetch_bytes()
