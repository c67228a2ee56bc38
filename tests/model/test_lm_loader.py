"""Checkpoint loader: single file and sharded index, `language_model.` prefix, dtype, meta build,
and ValueErrors naming the bad tensor or config field (CPU, no transformers needed)."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

import nanovl
from helpers import assert_close
from nanovl.config import TextConfig
from nanovl.model.hybrid_lm import NemotronHForCausalLM
from nanovl.model.loader import build_lm, load_weights, loading_progress, read_checkpoint_shapes

# a legacy-style config.json, as older Nemotron-H checkpoints write it
HF_CFG = {"model_type": "nemotron_h", "architectures": ["NemotronHForCausalLM"], "vocab_size": 40,
          "hidden_size": 16, "hybrid_override_pattern": "M-*", "num_hidden_layers": 3, "num_attention_heads": 2,
          "num_key_value_heads": 1, "head_dim": 8, "intermediate_size": 24, "mamba_num_heads": 2,
          "mamba_head_dim": 8, "ssm_state_size": 4, "mamba_n_groups": 1, "mamba_d_conv": 3,
          "mamba_chunk_size": 4, "layer_norm_epsilon": 1e-5, "some_unknown_key": [1, 2]}


def _reference_model() -> NemotronHForCausalLM:
    torch.manual_seed(0)
    model = NemotronHForCausalLM(TextConfig.from_hf(HF_CFG)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _write(folder, tensors: dict, cfg: dict = HF_CFG, shards: int = 1):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    tensors = {k: v.contiguous() for k, v in tensors.items()}
    if shards == 1:
        save_file(tensors, str(folder / "model.safetensors"))
        return folder
    keys, weight_map = sorted(tensors), {}
    for i in range(shards):
        name = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: tensors[k] for k in keys[i::shards]}
        save_file(part, str(folder / name))
        weight_map.update({k: name for k in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


@pytest.fixture(scope="module")
def ref():
    return _reference_model()


@pytest.fixture
def sd(ref):
    return {k: v.clone() for k, v in ref.state_dict().items()}


IDS = torch.tensor([[3, 1, 4, 1, 5, 9, 2, 6, 5, 3]])


@torch.no_grad()
def test_single_file_roundtrip(tmp_path, ref, sd):
    model = nanovl.load_model(str(_write(tmp_path / "ck", sd)))
    assert isinstance(model, NemotronHForCausalLM) and not model.training
    assert model.config.pattern == "M-*" and model.config.conv_kernel == 3 and model.config.chunk_size == 4
    assert set(model.state_dict()) == set(sd)
    assert all(not p.requires_grad and p.device.type == "cpu" for p in model.parameters())
    assert_close("logits", ref(IDS), model(IDS), atol=0, rtol=0)


@torch.no_grad()
def test_sharded_index_loads(tmp_path, ref, sd):
    folder = _write(tmp_path / "sharded", sd, shards=3)
    assert len(list(folder.glob("model-*.safetensors"))) == 3
    assert_close("sharded_logits", ref(IDS), nanovl.load_model(folder)(IDS), atol=0, rtol=0)


def test_loading_progress_reports_every_tensor_and_ends_full(tmp_path, sd):
    folder = _write(tmp_path / "sharded", sd, shards=3)
    total = sum(f.stat().st_size for f in folder.glob("model-*.safetensors"))
    calls = []
    with loading_progress(lambda done, all_: calls.append((done, all_))):
        nanovl.load_model(folder)
    assert len(calls) == len(sd) + 1  # one per tensor, then the closing 100%
    assert all(a == total for _, a in calls)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls) and calls[-1] == (total, total)
    calls.clear()
    nanovl.load_model(folder)  # outside the block nothing reports
    assert calls == []


@torch.no_grad()
def test_language_model_prefix_and_vl_text_only(tmp_path, ref, sd):
    prefixed = {f"language_model.{k}": v for k, v in sd.items()}
    prefixed["vision_model.radio_model.model.blocks.0.attn.qkv.weight"] = torch.zeros(3, 3)
    prefixed["mlp1.0.weight"] = torch.zeros(4)
    folder = _write(tmp_path / "prefixed", prefixed)
    assert_close("prefixed", ref(IDS), nanovl.load_model(folder)(IDS), atol=0, rtol=0)
    vl_cfg = {"architectures": ["NemotronH_Nano_VL_V2"], "llm_config": HF_CFG, "vit_hidden_size": 1280}
    folder = _write(tmp_path / "vl", prefixed, cfg=vl_cfg)
    lm = nanovl.load_model(folder, text_only=True)
    assert_close("vl_text_only", ref(IDS), lm(IDS), atol=0, rtol=0)


@torch.no_grad()
def test_dtype_and_meta_build(tmp_path, ref, sd):
    folder = _write(tmp_path / "ck", sd)
    empty = build_lm(TextConfig.from_hf(HF_CFG))
    assert all(p.is_meta for p in empty.parameters()), "build_lm must not allocate weights"
    bf = nanovl.load_model(folder, dtype=torch.bfloat16)
    assert all(p.dtype == torch.bfloat16 for p in bf.parameters())
    assert_close("bf16", ref(IDS), bf(IDS), atol=0.1, rtol=0.05)
    assert read_checkpoint_shapes(folder)["backbone.layers.0.mixer.conv1d.weight"] == (16 + 2 * 4, 1, 3)


def test_missing_tensor_is_named(tmp_path, sd):
    del sd["backbone.layers.0.mixer.A_log"]
    with pytest.raises(ValueError, match=r"missing tensor\(s\): backbone\.layers\.0\.mixer\.A_log"):
        nanovl.load_model(_write(tmp_path / "ck", sd))


def test_wrong_shape_is_named(tmp_path, sd):
    sd["backbone.layers.1.mixer.up_proj.weight"] = torch.zeros(25, 16)
    with pytest.raises(ValueError, match=r"mis-shaped.*backbone\.layers\.1\.mixer\.up_proj\.weight.*\[25, 16\]"):
        nanovl.load_model(_write(tmp_path / "ck", sd))


def test_unexpected_tensor_is_named(tmp_path, sd):
    sd["backbone.layers.9.mixer.q_proj.weight"] = torch.zeros(2, 2)
    with pytest.raises(ValueError, match=r"unexpected tensor\(s\): backbone\.layers\.9\.mixer\.q_proj\.weight"):
        nanovl.load_model(_write(tmp_path / "ck", sd))


def test_inconsistent_mamba_heads_name_the_tensor(tmp_path, sd):
    # config claims 3 mamba heads of 8 while the checkpoint was made with 2: in_proj no longer fits
    with pytest.raises(ValueError, match=r"backbone\.layers\.0\.mixer\.in_proj\.weight"):
        nanovl.load_model(_write(tmp_path / "ck", sd, cfg={**HF_CFG, "mamba_num_heads": 3}))


@pytest.mark.parametrize("change,field", [
    ({"hybrid_override_pattern": "M-E"}, "hybrid_override_pattern"),
    ({"hybrid_override_pattern": None, "layers_block_type": ["mamba", "moe", "attention"]}, "layers_block_type"),
    ({"num_key_value_heads": 3}, "num_key_value_heads"),
    ({"mamba_n_groups": 3}, "n_groups"),
    ({"num_hidden_layers": 5}, "num_hidden_layers"),
    ({"mamba_chunk_size": 0}, "chunk_size"),
    ({"time_step_limit": [0.5, 0.1]}, "time_step_limit"),
], ids=["pattern-char", "block-type", "kv-heads", "mamba-groups", "num-layers", "chunk", "dt-limit"])
def test_bad_config_names_the_field(tmp_path, sd, change, field):
    cfg = {k: v for k, v in {**HF_CFG, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=f"`{field}`"):
        nanovl.load_model(_write(tmp_path / "ck", sd, cfg=cfg))


def test_transformers_style_config_json():
    cfg = {**{k: v for k, v in HF_CFG.items() if k != "hybrid_override_pattern"},
           "layers_block_type": ["linear_attention", "mlp", "full_attention"],
           "time_step_limit": [0.0, {"__float__": "Infinity"}], "expand": 1}
    tc = TextConfig.from_hf(json.loads(json.dumps(cfg)))
    assert tc.pattern == "M-*" and tc.time_step_limit == (0.0, float("inf"))
    # d_inner comes from mamba_num_heads * mamba_head_dim, as in transformers (expand is init-only)
    assert tc.d_inner == 16 and tc.conv_dim == 16 + 2 * 4


def test_missing_files_and_paths(tmp_path, sd, monkeypatch):
    with pytest.raises(ValueError, match="does not exist"):
        nanovl.load_model(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no config.json"):
        nanovl.load_model(tmp_path / "empty")
    (tmp_path / "empty" / "config.json").write_text(json.dumps(HF_CFG))
    with pytest.raises(ValueError, match="neither model.safetensors"):
        nanovl.load_model(tmp_path / "empty")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="cannot fetch checkpoint 'nanovl-test/not-a-repo'"):
        nanovl.load_model("nanovl-test/not-a-repo")


def test_load_weights_into_plain_module(tmp_path, sd):
    folder = _write(tmp_path / "ck", sd)
    model = NemotronHForCausalLM(TextConfig.from_hf(HF_CFG))
    with pytest.raises(ValueError, match=r"missing tensor\(s\): lm_head\.weight"):
        load_weights(model, folder, key_map=lambda k: None if k.startswith("lm_head") else k)


@torch.no_grad()
def test_tied_embeddings_load_without_lm_head(tmp_path, sd):
    del sd["lm_head.weight"]
    model = nanovl.load_model(_write(tmp_path / "tied", sd, cfg={**HF_CFG, "tie_word_embeddings": True}))
    assert model.lm_head.weight is model.backbone.embeddings.weight
    assert torch.equal(model.lm_head.weight, sd["backbone.embeddings.weight"])


@pytest.mark.parametrize("key", ["head_dim", "attention_head_dim", None])
def test_attention_head_dim_as_transformers_reads_it(key):
    # original remote-code configs name it attention_head_dim; with neither key transformers takes
    # 128, not hidden_size // heads (Nemotron-H 4B: 3072 // 32 = 96 would refuse its checkpoint)
    transformers = pytest.importorskip("transformers")
    cfg = {k: v for k, v in HF_CFG.items() if k != "head_dim"}
    cfg.update({"hidden_size": 96, "num_attention_heads": 4})
    if key is not None:
        cfg[key] = 16
    expected = 16 if key is not None else 128
    assert TextConfig.from_hf(cfg).head_dim == expected
    if key != "attention_head_dim":  # transformers' config reads only the current name
        assert transformers.NemotronHConfig(**cfg).head_dim == expected


def test_dtype_by_name_and_clear_errors(tmp_path, sd):
    folder = _write(tmp_path / "ck", sd)
    assert next(nanovl.load_model(folder, dtype="bfloat16").parameters()).dtype == torch.bfloat16
    for bad in ("int8", "bf16", torch.int32):
        with pytest.raises(ValueError, match="dtype must be a floating torch dtype"):
            nanovl.load_model(folder, dtype=bad)
