"""Parity with transformers' NemotronHForCausalLM (its CPU torch path) on tiny random configs.

Each config is written with `save_pretrained`, loaded with `nanovl.load_model`, and compared on
float32 logits and on 20 greedy tokens against `generate`. Run: pytest tests/parity -q
"""
from __future__ import annotations

import json
import math

import pytest
import torch

import nanovl
from helpers import assert_close

transformers = pytest.importorskip("transformers")

# Every config sets time_step_min to 1e-9: transformers' torch path clamps dt >= time_step_min in
# prefill (not in decode), while the kernel path of SPEC §2.4 has no clamp. With a negligible floor
# (and dt_bias ~ U(-1, 1)) softplus(dt) never reaches it, so both paths compute the same math.
BASE = dict(hidden_size=32, intermediate_size=48, num_attention_heads=4, num_key_value_heads=2, head_dim=8,
            mamba_num_heads=4, mamba_head_dim=8, ssm_state_size=8, time_step_min=1e-9)
CONFIGS = {
    # attention first and last; chunk 4 smaller than and not dividing the 11-token prompt
    "attn-ends-g1-chunk4": dict(BASE, vocab_size=97, hybrid_override_pattern="*M-M*", n_groups=1,
                                chunk_size=4, conv_kernel=4, prompt_len=11),
    # runs of MLP; chunk equal to the prompt length; conv kernel 3
    "mlp-runs-g2-chunk8": dict(BASE, vocab_size=256, hybrid_override_pattern="M--*M--", n_groups=2,
                               chunk_size=8, conv_kernel=3, prompt_len=8),
    # chunk larger than the prompt; 4 groups; conv kernel 2; hidden 64, mamba expand 1 (8 x 8 = 64)
    "g4-chunk16-k2": dict(BASE, vocab_size=300, hidden_size=64, hybrid_override_pattern="MM*--M", n_groups=4,
                          chunk_size=16, conv_kernel=2, mamba_num_heads=8, prompt_len=13),
    # legacy config keys (mamba_* aliases + hybrid_override_pattern), MHA, sharded checkpoint
    "legacy-sharded-mha": dict(BASE, vocab_size=131, hybrid_override_pattern="M*M-*M", n_groups=2,
                               chunk_size=5, conv_kernel=4, num_key_value_heads=4, prompt_len=23,
                               legacy=True, shard="20KB"),
}
LEGACY_NAMES = {"n_groups": "mamba_n_groups", "conv_kernel": "mamba_d_conv", "chunk_size": "mamba_chunk_size"}


def _randomize(model: torch.nn.Module) -> None:
    # transformers' init leaves norms at 1, D at 1 and tiny logits; random values exercise every term
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("A_log"):
                p.copy_(torch.log(1 + 7 * torch.rand_like(p)))
            elif name.endswith("dt_bias"):
                p.uniform_(-1.0, 1.0)
            elif name.endswith("norm.weight") or name.endswith("norm_f.weight"):
                p.copy_(1 + 0.2 * torch.randn_like(p))
            elif name.endswith(".D"):
                p.normal_()
            else:
                p.normal_(0.0, 1.0 / math.sqrt(p.shape[-1]))


def _write_checkpoint(spec: dict, folder) -> "transformers.PreTrainedModel":
    kw = {k: v for k, v in spec.items() if k not in ("prompt_len", "legacy", "shard")}
    hf = transformers.NemotronHForCausalLM(transformers.NemotronHConfig(**kw)).eval()
    _randomize(hf)
    hf.save_pretrained(folder, max_shard_size=spec.get("shard", "5GB"))
    if spec.get("legacy"):
        cfg_file = folder / "config.json"
        cfg = json.loads(cfg_file.read_text())
        cfg["hybrid_override_pattern"] = spec["hybrid_override_pattern"]
        del cfg["layers_block_type"]
        for new, old in LEGACY_NAMES.items():
            cfg[old] = cfg.pop(new)
        cfg_file.write_text(json.dumps(cfg))
    return hf


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def pair(request, tmp_path_factory):
    spec = CONFIGS[request.param]
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(1234)
    hf = _write_checkpoint(spec, folder)
    ours = nanovl.load_model(str(folder))
    ids = torch.randint(0, spec["vocab_size"], (2, spec["prompt_len"]), generator=torch.Generator().manual_seed(7))
    return spec, folder, hf, ours, ids


def test_checkpoint_layout(pair):
    spec, folder, hf, ours, _ = pair
    if spec.get("shard"):
        assert (folder / "model.safetensors.index.json").is_file(), "expected a sharded checkpoint"
    assert ours.config.pattern == spec["hybrid_override_pattern"]
    assert ours.config.chunk_size == spec["chunk_size"] and ours.config.n_groups == spec["n_groups"]
    assert ours.config.conv_kernel == spec["conv_kernel"]


def test_logits_match_transformers(pair):
    _, _, hf, ours, ids = pair
    with torch.no_grad():
        ref = hf(ids).logits.float()
        out = ours(ids).float()
    assert_close("logits", ref, out, atol=1e-4, rtol=1e-5)
    rel = ((ref - out).abs().max() / ref.abs().max()).item()
    assert rel < 1e-5, f"relative error {rel:.2e} (max abs diff over max |logit|)"


def test_greedy_generation_matches_transformers(pair):
    _, _, hf, ours, ids = pair
    prompt = ids[:1]
    with torch.no_grad():
        # no eos, so both sides emit exactly 20 argmax tokens with no logits processing
        hf.generation_config.eos_token_id = None
        ref = hf.generate(prompt, max_new_tokens=20, do_sample=False)[0, prompt.shape[1]:]
        state = ours.new_state(1)
        logits = ours(prompt, state=state)
        tokens = []
        for _ in range(20):
            nxt = logits[:, -1].argmax(-1, keepdim=True)  # [1, 1]
            tokens.append(int(nxt))
            logits = ours(nxt, state=state)
    assert len(ref) == 20 and tokens == ref.tolist()
