"""Random official-layout VL checkpoints: writer, key names, round trip through nanovl.load_model.

Run: python -m pytest tests/model/test_vlm_checkpoint.py
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

import nanovl
from nanovl.config import VLConfig
from nanovl.model.presets import preset_config
from nanovl.model.vlm import NemotronVL, build_vl_model, vl_key_map
from nanovl.testing import vl_checkpoint_shapes, write_random_text_checkpoint, write_random_vl_checkpoint


def _read_all(folder) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    out = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def _in_memory_model(folder) -> NemotronVL:
    """The model built straight from the files, without the loader."""
    cfg = VLConfig.from_hf(json.loads((folder / "config.json").read_text()))
    tensors = _read_all(folder)
    model = build_vl_model(cfg, {k: tuple(t.shape) for k, t in tensors.items()})
    mapped = {vl_key_map(k): t for k, t in tensors.items()}
    mapped.pop(None)
    model.load_state_dict(mapped, strict=True)
    return model.eval()


def _prompt(cfg: VLConfig, n_tiles: int) -> torch.Tensor:
    n = n_tiles * cfg.num_image_token
    ids = torch.randint(20, 300, (1, n + 9))
    ids[0, 4:4 + n] = cfg.img_context_token_id
    return ids


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_random_vl_checkpoint(tmp_path_factory.mktemp("vl1"), seed=3)


def test_checkpoint_keys_equal_module_keys(ckpt):
    on_disk = set(_read_all(ckpt))
    model = _in_memory_model(ckpt)
    assert set(model.state_dict()) == {vl_key_map(k) for k in on_disk} - {None}
    assert {k for k in on_disk if vl_key_map(k) is None} == {
        "vision_model.radio_model.input_conditioner.norm_mean",
        "vision_model.radio_model.input_conditioner.norm_std", "vision_model.radio_model.summary_idxs"}


@pytest.mark.parametrize("num_shards", [1, 3], ids=["single", "sharded"])
def test_round_trip_through_load_model(tmp_path, num_shards):
    folder = write_random_vl_checkpoint(tmp_path / "ck", seed=5, num_shards=num_shards)
    if num_shards > 1:
        index = json.loads((folder / "model.safetensors.index.json").read_text())
        assert len(set(index["weight_map"].values())) == num_shards
        assert not (folder / "model.safetensors").exists()
    loaded = nanovl.load_model(folder)
    assert isinstance(loaded, NemotronVL)
    ref = _in_memory_model(folder)
    cfg = ref.config
    ids, pixels = _prompt(cfg, 2), torch.randn(2, 3, cfg.force_image_size, cfg.force_image_size)
    with torch.no_grad():
        a, b = ref(ids, pixels), loaded(ids, pixels)
    assert torch.equal(a, b)
    assert torch.isfinite(a).all()


def test_random_model_logits_are_well_scaled(ckpt):
    model = _in_memory_model(ckpt)
    cfg = model.config
    ids = _prompt(cfg, 1)
    with torch.no_grad():
        logits = model(ids, torch.randn(1, 3, cfg.force_image_size, cfg.force_image_size))[0]
    std = logits.std(-1)
    # neither uniform (tiny weights) nor saturated (exploding activations)
    assert 0.3 < std.min() and std.max() < 10, std
    assert logits.argmax(-1).unique().numel() > 3


def _rewrite(folder, edit):
    path = folder / "model.safetensors"
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path))


@pytest.mark.parametrize("key, change", [
    ("vision_model.radio_model.model.blocks.1.mlp.fc2.weight", "drop"),
    ("vision_model.radio_model.model.patch_generator.pos_embed", "reshape"),
    ("vision_model.radio_model.model.patch_generator.cls_token.token", "drop"),
    ("mlp1.1.weight", "reshape"),
], ids=["missing-fc2", "bad-pos-embed", "missing-cls", "bad-mlp1"])
def test_missing_or_misshaped_vision_tensor_raises(tmp_path, key, change):
    folder = write_random_vl_checkpoint(tmp_path / "bad")

    def edit(t):
        if change == "drop":
            del t[key]
        else:
            t[key] = t[key].flatten()[: t[key].numel() // 2].clone()

    _rewrite(folder, edit)
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        nanovl.load_model(folder)


def test_prefix_token_count_read_from_checkpoint(tmp_path):
    folder = write_random_vl_checkpoint(tmp_path / "c", overrides={"vision_config": {"num_registers": 7}})
    cfg = json.loads((folder / "config.json").read_text())
    del cfg["vision_config"]["num_cls_tokens"], cfg["vision_config"]["num_registers"]
    (folder / "config.json").write_text(json.dumps(cfg))
    model = nanovl.load_model(folder)
    assert model.vision_model.vit.patch_generator.num_prefix_tokens == 8


def test_writer_uses_tokenizer_image_id_and_copies_files(tmp_path):
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel

    vocab = {f"w{i}": i for i in range(300)}
    tok = Tokenizer(WordLevel(vocab, unk_token="w0"))
    tok.add_special_tokens(["<img>", "</img>", "<image>", "<video>"])
    tok_dir = tmp_path / "tok"
    tok_dir.mkdir()
    tok.save(str(tok_dir / "tokenizer.json"))
    (tok_dir / "tokenizer_config.json").write_text("{}")
    folder = write_random_vl_checkpoint(tmp_path / "ck", tokenizer_dir=tok_dir)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["img_context_token_id"] == 302
    assert (folder / "tokenizer.json").exists() and (folder / "tokenizer_config.json").exists()
    with pytest.raises(ValueError, match="vocab_size"):
        write_random_vl_checkpoint(tmp_path / "small", tokenizer_dir=tok_dir,
                                   overrides={"llm_config": {"vocab_size": 256}})


def test_writer_config_and_dtype(tmp_path):
    folder = write_random_vl_checkpoint(tmp_path / "bf", dtype=torch.bfloat16,
                                        overrides={"llm_config": {"vocab_size": 512}})
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architectures"] == ["NemotronH_Nano_VL_V2"]
    assert cfg["llm_config"]["hybrid_override_pattern"] == "M*M-M*"
    assert cfg["llm_config"]["num_hidden_layers"] == 6
    assert {"force_image_size", "patch_size", "downsample_ratio", "ps_version", "projector_hidden_size",
            "vit_hidden_size", "norm_mean", "norm_std", "use_thumbnail", "max_num_tiles",
            "video_pruning_rate"} <= set(cfg)
    assert {"hidden_size", "num_hidden_layers", "num_attention_heads", "mlp_ratio", "patch_size",
            "max_img_size", "num_cls_tokens", "num_registers", "layer_norm_eps"} <= set(cfg["vision_config"])
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        emb = f.get_tensor("language_model.backbone.embeddings.weight")
        assert emb.dtype == torch.bfloat16 and emb.shape == (512, 64)
        a_log = f.get_tensor("language_model.backbone.layers.0.mixer.A_log").float()
    assert torch.allclose(a_log.exp(), torch.arange(1.0, 5.0), rtol=1e-2)
    assert nanovl.load_model(folder, dtype=torch.bfloat16).mlp1[1].weight.dtype == torch.bfloat16


def test_text_checkpoint_round_trip(tmp_path):
    folder = write_random_text_checkpoint(tmp_path / "t", seed=1)
    model = nanovl.load_model(folder)
    on_disk = load_file(str(folder / "model.safetensors"))
    assert set(model.state_dict()) == set(on_disk)
    for k, t in on_disk.items():
        assert torch.equal(model.state_dict()[k], t), k


def test_real_preset_parameter_counts():
    # SPEC Part J.11: LLM ~12.31B (at vocab 131072), ViT-H ~0.63B (without its 128x128 position
    # table), projector ~0.21B
    cfg = preset_config("nano-12b-v2-vl")
    shapes = vl_checkpoint_shapes(cfg)
    count = {"vision": 0, "mlp1": 0, "lm": 0}
    for k, s in shapes.items():
        part = "vision" if k.startswith("vision_model.") else "mlp1" if k.startswith("mlp1.") else "lm"
        count[part] += math.prod(s)
    extra_vocab = 2 * (cfg.text.vocab_size - 131072) * cfg.text.hidden_size
    assert abs(count["lm"] - extra_vocab - 12.31e9) < 0.01e9, count
    pos_table = 128 * 128 * 1280
    assert abs(count["vision"] - pos_table - 0.63e9) < 0.01e9, count
    assert count["mlp1"] == 5120 + 2 * 5120 * 20480
    assert shapes["vision_model.radio_model.model.patch_generator.pos_embed"] == (1, 128 * 128, 1280)
    assert cfg.num_image_token == 256


def test_real_preset_module_matches_official_layout():
    from nanovl.model.loader import init_on_meta

    cfg = preset_config("nano-12b-v2-vl")
    shapes = vl_checkpoint_shapes(cfg)
    with init_on_meta():
        model = build_vl_model(cfg, shapes)
    got = {k: tuple(t.shape) for k, t in model.state_dict().items()}
    want = {vl_key_map(k): s for k, s in shapes.items() if vl_key_map(k) is not None}
    assert got == want
    assert model.vision_model.vit.patch_generator.num_prefix_tokens == 8


def test_meta_build_skips_fills_and_restores_nn_init():
    # a fill of a meta parameter would import torch._dynamo (normal_ goes through the decomposition
    # refs on meta): ~2-3 s of every CLI start, for values the checkpoint overwrites
    from nanovl.model.loader import init_on_meta

    before = torch.nn.init.normal_
    with init_on_meta():
        emb = torch.nn.Embedding(7, 3)
        real = torch.nn.init.normal_(torch.zeros(4), std=1.0)  # a real tensor still gets its fill
    assert emb.weight.is_meta and real.abs().sum() > 0
    assert torch.nn.init.normal_ is before


def test_loading_the_bundled_model_does_not_import_dynamo():
    import subprocess
    import sys

    code = ("import sys; from nanovl.llm import BUNDLED_MODEL; from nanovl.model.loader import load_model; "
            "load_model(BUNDLED_MODEL); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
