"""Attention's fused q/k/v weight (Attention.fuse_qkv; load_model does it on a GPU): the same
logits and state dict as the three projections, used only while it can be, never for training."""
from __future__ import annotations

import copy

import torch

from nanovl.model.attention import Attention
from nanovl.model.hybrid_lm import NemotronHForCausalLM
from nanovl.model.loader import fuse_projections
from nanovl.model.presets import preset_text_config


def _pair() -> tuple[NemotronHForCausalLM, NemotronHForCausalLM]:
    torch.manual_seed(0)
    plain = NemotronHForCausalLM(preset_text_config("tiny")).eval()
    fused = copy.deepcopy(plain)
    for m in fused.modules():
        if isinstance(m, Attention):
            m.fuse_qkv()
    return plain, fused


def _attention(lm: NemotronHForCausalLM) -> list[Attention]:
    return [m for m in lm.modules() if isinstance(m, Attention)]


def _prefill_then_decode(lm: NemotronHForCausalLM, ids: torch.Tensor, steps: int) -> torch.Tensor:
    st = lm.new_state(ids.shape[0])
    out = [lm(ids[:, :-steps], state=st)]
    out += [lm(ids[:, t:t + 1], state=st) for t in range(ids.shape[1] - steps, ids.shape[1])]
    return torch.cat(out, 1)


@torch.inference_mode()
def test_fused_qkv_gives_the_three_projections_results():
    plain, fused = _pair()
    assert _attention(fused) and all(a._fused_qkv() is not None for a in _attention(fused))
    ids = torch.randint(0, plain.config.vocab_size, (2, 21))
    a, b = _prefill_then_decode(plain, ids, 5), _prefill_then_decode(fused, ids, 5)
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    # the parameters are views of the fused buffer: same keys, same values
    sd_plain, sd_fused = plain.state_dict(), fused.state_dict()
    assert list(sd_plain) == list(sd_fused) and all(torch.equal(sd_plain[k], sd_fused[k]) for k in sd_plain)


@torch.inference_mode()
def test_loading_into_fused_parameters_reaches_the_fused_weight():
    # a state dict copied in after fusing (as a reload would) lands in the buffer the forward reads
    plain, fused = _pair()
    for p in plain.parameters():
        p.add_(0.01 * torch.randn_like(p))
    fused.load_state_dict(plain.state_dict())
    assert all(a._fused_qkv() is not None for a in _attention(fused))
    ids = torch.randint(0, plain.config.vocab_size, (1, 9))
    torch.testing.assert_close(fused(ids), plain(ids), atol=1e-5, rtol=1e-5)


def test_training_goes_through_the_three_projections():
    # the fused buffer is no parameter: with gradients wanted it must not be read
    plain, fused = _pair()
    fused.train()
    attn = _attention(fused)[0]
    assert attn._fused_qkv() is None
    ids = torch.randint(0, plain.config.vocab_size, (1, 9))
    fused(ids).square().mean().backward()
    assert attn.k_proj.weight.grad is not None and attn.k_proj.weight.grad.abs().sum() > 0


@torch.inference_mode()
def test_a_moved_model_falls_back_to_the_three_projections():
    plain, fused = _pair()
    fused = fused.double()  # new parameter tensors: no longer views of the buffer
    assert all(a._fused_qkv() is None for a in _attention(fused))
    ids = torch.randint(0, plain.config.vocab_size, (1, 9))
    torch.testing.assert_close(fused(ids).float(), plain(ids), atol=1e-4, rtol=1e-4)


def test_fuse_projections_leaves_a_cpu_model_alone():
    # on the CPU loading stays bit-equal to the module built in memory (test_lm_loader)
    plain, _ = _pair()
    fuse_projections(plain)
    assert all(a._qkv is None for a in _attention(plain))
