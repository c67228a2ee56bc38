"""FP8 checkpoints in ModelOpt's layout: `load_model` puts an `Fp8Linear` wherever the checkpoint holds a
`weight_scale`, and the model then computes what a fake-quantized copy of the original computes."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from nanovl.model.fp8_linear import Fp8Linear
from nanovl.model.loader import load_model
from nanovl.ops.fp8_linear import quantize_fp8_ref
from nanovl.quant.fp8_checkpoint import write_fp8_checkpoint
from nanovl.quant.calibrate import input_amax, projection_names
from nanovl.testing.random_checkpoint import write_random_text_checkpoint, write_random_vl_checkpoint


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / a.double().norm()).item()


def _logits(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    lm = getattr(model, "language_model", model)
    with torch.no_grad():
        return lm(ids).float()


def _quantized_copy(tmp_path, text_only: bool = False, shards: int = 2):
    """(original folder, FP8 folder, the projections' amax) for a random tiny checkpoint, its input
    scales calibrated on one random prompt."""
    write = write_random_text_checkpoint if text_only else write_random_vl_checkpoint
    src = write(tmp_path / "src", num_shards=shards)
    model = load_model(src)
    ids = torch.randint(0, 200, (1, 24), generator=torch.Generator().manual_seed(1))
    amax = input_amax(model, projection_names(model), lambda: _logits(model, ids))
    # module names are the checkpoint's key prefixes in both layouts
    dst = write_fp8_checkpoint(src, tmp_path / "fp8", amax, exclude=["lm_head", "vision_model*", "mlp1*"])
    return src, dst, amax


def _fake_quantized(src, dst, amax: dict) -> nn.Module:
    """The original model with each quantized projection's weight replaced by its dequantized e4m3
    value and its input rounded to e4m3 and back: an independent spelling of what FP8 computes."""
    model = load_model(src)
    tensors = {}
    for f in sorted(dst.glob("*.safetensors")):
        tensors.update(load_file(str(f)))
    for name in amax:
        linear = model.get_submodule(name)
        w, ws = tensors[name + ".weight"], tensors[name + ".weight_scale"]
        xs = tensors[name + ".input_scale"]
        linear.weight.data = w.float() * ws.float()

        def fake(x, xs=xs):
            return (quantize_fp8_ref(x, xs).float() * xs).to(x.dtype)
        _round_inputs(linear, fake)
    return model


def _round_inputs(linear: nn.Module, fake) -> None:
    """Make `linear` (both its entry points: the MLP's up projection runs `forward_relu_square`)
    take `fake(x)` instead of x."""
    for method in ("forward", "forward_relu_square"):
        orig = getattr(linear, method)
        setattr(linear, method, lambda x, orig=orig: orig(fake(x)))


def test_fp8_checkpoint_computes_the_fake_quantized_model(tmp_path):
    src, dst, amax = _quantized_copy(tmp_path)
    fp8 = load_model(dst)
    swapped = [n for n, m in fp8.named_modules() if isinstance(m, Fp8Linear)]
    assert sorted(swapped) == sorted(amax) and len(swapped) == 16
    assert all(not isinstance(m, Fp8Linear) for n, m in fp8.named_modules()
               if n.startswith(("vision_model", "mlp1")) or n.endswith("lm_head"))
    ids = torch.randint(0, 200, (2, 30), generator=torch.Generator().manual_seed(2))
    want = _logits(_fake_quantized(src, dst, amax), ids)
    got = _logits(fp8, ids)
    assert _rel(want, got) < 1e-5  # fp32 rounding of the same products: (xq . wq) s_x s_w vs (xq s_x) . (wq s_w)
    # and FP8 stays near the unquantized model (random tiny weights: measured 4.1e-2)
    assert _rel(_logits(load_model(src), ids), got) < 0.1


def test_per_channel_per_token_checkpoint_computes_its_fake_quantized_model(tmp_path):
    # ModelOpt's FP8_PER_CHANNEL_PER_TOKEN: weight scales per output row, no input scales (each row
    # of x scaled by its own amax at run time)
    src = write_random_vl_checkpoint(tmp_path / "src")
    model = load_model(src)
    names = projection_names(model)
    dst = write_fp8_checkpoint(src, tmp_path / "pc", {n: 0.0 for n in names}, per_channel_per_token=True)
    tensors = load_file(str(dst / "model.safetensors"))
    assert tensors[names[0] + ".weight_scale"].shape == (model.get_submodule(names[0]).out_features,)
    assert not any(k.endswith(".input_scale") for k in tensors)
    fp8 = load_model(dst)
    assert all(isinstance(fp8.get_submodule(n), Fp8Linear) and fp8.get_submodule(n).per_token for n in names)
    for name in names:  # the independent spelling: dequantized weights, each input row rounded by its own scale
        linear = model.get_submodule(name)
        linear.weight.data = tensors[name + ".weight"].float() * tensors[name + ".weight_scale"].float()[:, None]

        def fake(x):
            s = (x.abs().amax(-1, keepdim=True).float() / 448).clamp_min(1e-12)
            return ((x.float() / s).clamp(-448, 448).to(torch.float8_e4m3fn).float() * s).to(x.dtype)
        _round_inputs(linear, fake)
    ids = torch.randint(0, 200, (2, 30), generator=torch.Generator().manual_seed(5))
    assert _rel(_logits(model, ids), _logits(fp8, ids)) < 1e-5
    assert _rel(_logits(load_model(src), ids), _logits(fp8, ids)) < 0.1


def test_fp8_tensors_keep_their_dtypes_in_any_model_dtype(tmp_path):
    _, dst, _ = _quantized_copy(tmp_path, shards=1)
    model = load_model(dst, dtype=torch.bfloat16)
    proj = model.language_model.backbone.layers[0].mixer.in_proj
    assert proj.weight.dtype == torch.float8_e4m3fn
    assert proj.weight_scale.dtype == proj.input_scale.dtype == torch.float32
    assert model.language_model.lm_head.weight.dtype == torch.bfloat16
    scale = proj.input_scale.clone()
    model.to(torch.float16)  # a later cast moves the rest, never the e4m3 weight or its fp32 scales
    assert proj.weight.dtype == torch.float8_e4m3fn and torch.equal(proj.input_scale, scale)
    assert model.language_model.lm_head.weight.dtype == torch.float16
    out = _logits(model, torch.tensor([[1, 2, 3]]))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


def test_text_only_fp8_checkpoint_loads(tmp_path):
    src, dst, amax = _quantized_copy(tmp_path, text_only=True, shards=1)
    fp8 = load_model(dst)
    assert sum(isinstance(m, Fp8Linear) for m in fp8.modules()) == len(amax)
    ids = torch.randint(0, 200, (1, 20), generator=torch.Generator().manual_seed(3))
    assert _rel(_logits(_fake_quantized(src, dst, amax), ids), _logits(fp8, ids)) < 1e-5


@pytest.mark.parametrize("keep", ["config.json", "hf_quant_config.json"])
def test_either_quantization_file_alone_is_enough(tmp_path, keep):
    _, dst, _ = _quantized_copy(tmp_path, shards=1)
    if keep == "config.json":
        (dst / "hf_quant_config.json").unlink()
    else:
        cfg = json.loads((dst / "config.json").read_text())
        del cfg["quantization_config"]
        (dst / "config.json").write_text(json.dumps(cfg))
    assert any(isinstance(m, Fp8Linear) for m in load_model(dst).modules())


def _edit(dst, fn) -> None:
    path = dst / "model.safetensors"
    tensors = load_file(str(path))
    fn(tensors)
    save_file(tensors, str(path))


def test_kv_cache_scales_are_skipped(tmp_path):
    _, dst, _ = _quantized_copy(tmp_path, shards=1)
    _edit(dst, lambda t: t.update({"language_model.backbone.layers.1.mixer.k_proj.k_scale": torch.tensor(0.1),
                                   "language_model.backbone.layers.1.mixer.v_proj.v_scale": torch.tensor(0.1)}))
    assert isinstance(load_model(dst).language_model.backbone.layers[1].mixer.k_proj, Fp8Linear)


def test_missing_input_scales_become_dynamic(tmp_path):
    _, dst, _ = _quantized_copy(tmp_path, shards=1)
    static = load_model(dst)
    _edit(dst, lambda t: [t.pop(k) for k in [k for k in t if k.endswith(".input_scale")]])
    dynamic = load_model(dst)
    proj = dynamic.language_model.backbone.layers[0].mixer.in_proj
    assert isinstance(proj, Fp8Linear) and proj.input_scale is None
    ids = torch.randint(0, 200, (1, 20), generator=torch.Generator().manual_seed(4))
    assert _rel(_logits(static, ids), _logits(dynamic, ids)) < 0.1


@pytest.mark.parametrize("quant,message", [
    ({"quant_method": "modelopt", "quant_algo": "NVFP4"}, "'NVFP4' is not supported"),
    ({"quant_method": "gptq", "bits": 4}, "quantized with 'gptq'"),
    ({"quant_method": "modelopt", "quantization": {"quant_algo": "FP8_PB_WO"}}, "'FP8_PB_WO' is not supported"),
    ({"quant_method": "modelopt", "quant_algo": "W4A16_NVFP4"}, "'W4A16_NVFP4' is not supported"),
])
def test_unsupported_quantization_is_named(tmp_path, quant, message):
    _, dst, _ = _quantized_copy(tmp_path, shards=1)
    (dst / "hf_quant_config.json").unlink()
    cfg = json.loads((dst / "config.json").read_text())
    cfg["quantization_config"] = quant
    (dst / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match=message):
        load_model(dst)


def test_fp8_weight_without_its_scale_is_refused(tmp_path):
    _, dst, _ = _quantized_copy(tmp_path, shards=1)
    _edit(dst, lambda t: t.pop("language_model.backbone.layers.0.mixer.in_proj.weight_scale"))
    with pytest.raises(ValueError, match="in_proj.weight.*without a weight_scale"):
        load_model(dst)


def test_a_scale_on_a_non_linear_tensor_is_refused(tmp_path):
    _, dst, _ = _quantized_copy(tmp_path, shards=1)
    _edit(dst, lambda t: t.update({"language_model.backbone.layers.0.norm.weight_scale": torch.tensor(1.0)}))
    with pytest.raises(ValueError, match="linear layers only"):
        load_model(dst)


def test_writing_refuses_a_quantized_source_and_an_occupied_target(tmp_path):
    src, dst, amax = _quantized_copy(tmp_path, shards=1)
    with pytest.raises(ValueError, match="already quantized"):
        write_fp8_checkpoint(dst, tmp_path / "again", amax)
    with pytest.raises(ValueError, match="already holds a checkpoint"):
        write_fp8_checkpoint(src, dst, amax)
    with pytest.raises(ValueError, match="no weight"):
        write_fp8_checkpoint(src, tmp_path / "other", {"language_model.nothing.here": 1.0})
