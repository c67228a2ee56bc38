"""The LM's Linear: nn.Linear's parameters and keys, its forward routed through ops.linear (CPU)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nanovl.model import linear as linear_module
from nanovl.model.linear import Linear


def test_linear_keeps_nn_linear_keys_and_math():
    layer = Linear(6, 4, bias=True)
    assert set(layer.state_dict()) == {"weight", "bias"}
    x = torch.randn(2, 3, 6)
    assert torch.equal(layer(x), F.linear(x, layer.weight, layer.bias))


def test_linear_forward_goes_through_the_op(monkeypatch):
    calls = []

    def spy(x, weight, bias=None):
        calls.append(tuple(x.shape))
        return F.linear(x, weight, bias)

    monkeypatch.setattr(linear_module, "linear", spy)
    Linear(6, 4, bias=False)(torch.randn(1, 1, 6))
    assert calls == [(1, 1, 6)]


@pytest.mark.parametrize("fused_qkv", [True, False])
def test_decode_projects_each_blocks_pending_norm_in_one_op(monkeypatch, fused_qkv):
    # every block after the first, and lm_head, get their input as a PendingNorm and hand it to the
    # fused op (attention with three q / k / v weights norms once instead); the logits and the
    # state equal those of the norm computed on its own
    from nanovl.model.hybrid_lm import NemotronHForCausalLM
    from nanovl.model.attention import Attention
    from nanovl.model.presets import preset_text_config
    from nanovl.ops.linear import add_rms_norm_linear

    calls = []

    def spy(*args, **kwargs):
        calls.append(tuple(args[0].shape))
        return add_rms_norm_linear(*args, **kwargs)

    torch.manual_seed(0)
    lm = NemotronHForCausalLM(preset_text_config("tiny")).eval()
    for block in lm.backbone.layers:
        if fused_qkv and isinstance(block.mixer, Attention):
            block.mixer.fuse_qkv()  # as loader.fuse_projections does on a GPU
    ids = torch.randint(0, lm.config.vocab_size, (2, 9))
    with torch.no_grad():
        plain_state = lm.new_state(2)
        lm(ids[:, :8], state=plain_state)
        monkeypatch.setattr(linear_module, "add_rms_norm_linear", spy)
        fused_state = lm.new_state(2)
        lm(ids[:, :8], state=fused_state)
        calls.clear()
        fused = lm(ids[:, 8:], state=fused_state)
        monkeypatch.undo()
        monkeypatch.setattr(linear_module.PendingNorm, "project", _unfused_project)
        plain = lm(ids[:, 8:], state=plain_state)
    projected = [k for k in lm.config.pattern[1:] if fused_qkv or k != "*"] + ["lm_head"]
    assert calls == [(2, 1, lm.config.hidden_size)] * len(projected)
    assert torch.equal(fused, plain)
    for a, b in zip(fused_state.layers, plain_state.layers):
        for name in ("conv", "ssm", "k", "v"):
            if hasattr(a, name):
                assert torch.equal(getattr(a, name), getattr(b, name))


def _unfused_project(self, weight, bias, relu_square=False):
    """PendingNorm.project as the norm then the projection, two ops (what the fused op replaces)."""
    from nanovl.ops.activation import relu_square as square

    y = F.linear(self.tensor(), weight, bias)
    return square(y) if relu_square else y
