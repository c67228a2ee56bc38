"""Calibration (`nanovl.quant.calibrate`): which projections, their checkpoint names, and the input
amax the hooks record against a hook-free recomputation."""
from __future__ import annotations

import tempfile

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nanovl.llm import BUNDLED_MODEL as TINY
from nanovl.quant.calibrate import checkpoint_prefixes, input_amax, projection_names, recording_input_amax
from nanovl.quant.calibration_data import synthetic_requests
from nanovl.quant.quantize import load_for_calibration, run_requests


@pytest.fixture(scope="module")
def tiny_llm():
    return load_for_calibration(TINY)


def test_projection_names_are_the_lm_linears_but_lm_head(tiny_llm):
    model = tiny_llm.engine.model
    names = projection_names(model)
    # pattern M*M-M*M-: Mamba in/out, attention q/k/v/o, MLP up/down
    assert len(names) == 4 * 2 + 2 * 4 + 2 * 2
    assert "language_model.backbone.layers.0.mixer.in_proj" in names
    assert "language_model.backbone.layers.3.mixer.up_proj" in names
    assert all(n.startswith("language_model.backbone.layers.") for n in names)
    assert all(isinstance(model.get_submodule(n), nn.Linear) for n in names)


def test_checkpoint_prefixes_of_vl_text_and_lm_only_loads(random_vl, random_text):
    from nanovl.model.loader import load_model

    vl = load_model(random_vl)
    names = projection_names(vl)
    assert checkpoint_prefixes(vl, random_vl, names) == {n: n for n in names}
    # the LM alone from a VL checkpoint: module names lose the prefix, checkpoint keys keep it
    lm = load_model(random_vl, text_only=True)
    lm_names = projection_names(lm)
    assert lm_names[0] == "backbone.layers.0.mixer.in_proj"
    assert checkpoint_prefixes(lm, random_vl, lm_names) == {n: "language_model." + n for n in lm_names}
    text = load_model(random_text)
    text_names = projection_names(text)
    assert checkpoint_prefixes(text, random_text, text_names) == {n: n for n in text_names}
    assert "lm_head" not in text_names


def _projection_inputs(lm: nn.Module, ids: torch.Tensor) -> dict[str, torch.Tensor]:
    """Inputs [1, T, *] of a few projections of the first four blocks (kinds M, *, M, -), recomputed by
    hand in one training-path forward (no state, no hooks)."""
    with torch.no_grad():
        hidden, pending, inputs = lm.embed(ids), None, {}
        for i, block in enumerate(lm.backbone.layers[:4]):
            inputs[i] = block.norm(hidden) if pending is None else block.norm.add_and_norm(pending, hidden)[0]
            hidden, pending = block(hidden, pending, None, None)
        down_in = F.relu(F.linear(inputs[3], lm.backbone.layers[3].mixer.up_proj.weight)) ** 2
    layer = "language_model.backbone.layers.{}.mixer.{}".format
    return {layer(0, "in_proj"): inputs[0], layer(1, "q_proj"): inputs[1], layer(1, "v_proj"): inputs[1],
            layer(2, "in_proj"): inputs[2], layer(3, "up_proj"): inputs[3], layer(3, "down_proj"): down_in}


def _assert_amax(amax: dict[str, float], inputs: dict[str, torch.Tensor]) -> None:
    for name, x in inputs.items():
        ref = x.abs().max().item()
        print(f"{name}: hooks {amax[name]:.6f} recomputed {ref:.6f}")
        assert amax[name] == pytest.approx(ref, rel=1e-4), name


def test_amax_equals_a_hook_free_recomputation(tiny_llm):
    # one text-only request (an arithmetic drill), prefill + greedy decode through the engine; then the
    # same tokens in one training-path forward
    model = tiny_llm.engine.model
    with tempfile.TemporaryDirectory() as workdir:
        request = next(r for r in synthetic_requests(8, workdir, text_only=True))
    names = projection_names(model)
    outputs = []
    amax = input_amax(model, names, lambda: outputs.extend(run_requests(tiny_llm, [request])))
    [out] = outputs
    assert out.num_generated_tokens >= 2  # decode steps ran, not only the prefill
    prompt = tiny_llm.processor.process_chat(request.messages, enable_thinking=request.enable_thinking)
    # the last generated token is never fed back
    ids = torch.tensor([list(prompt.prompt_token_ids) + list(out.token_ids[:-1])])
    _assert_amax(amax, _projection_inputs(model.language_model, ids))


def test_decode_steps_alone_are_recorded(tiny_llm):
    # a prefill outside the recording, then two one-token decode steps inside it: the amax is that of
    # the last two positions only (the MLP's up projection takes its decode call too)
    lm = tiny_llm.engine.model.language_model
    ids = torch.tensor([tiny_llm.tokenizer.encode("The total of 4 x 77.54 and 2 x 13.10 is")])
    state = lm.new_state(1)
    with torch.no_grad():
        lm(ids[:, :-2], state=state)
        with recording_input_amax(lm, [n.removeprefix("language_model.") for n in projection_names(lm)]) as amax:
            lm(ids[:, -2:-1], state=state)
            lm(ids[:, -1:], state=state)
    recorded = {"language_model." + name: float(a) for name, a in amax.items()}
    _assert_amax(recorded, {n: x[:, -2:] for n, x in _projection_inputs(lm, ids).items()})


def test_a_projection_that_never_ran_is_an_error_naming_it(tiny_llm):
    model = tiny_llm.engine.model
    names = projection_names(model)
    with pytest.raises(ValueError, match=r"never ran projection\(s\) language_model\.backbone\.layers\.0\.mixer\.in_proj"):
        input_amax(model, names, lambda: None)


def test_a_fused_qkv_bypasses_its_projections_and_is_caught(random_vl):
    # load_model fuses q/k/v on a GPU: a fused attention calls none of the three modules, which is
    # why calibration loads on the CPU; fused by hand here, the hook-less projections are named
    from nanovl.model.loader import load_model

    model = load_model(random_vl)
    attn = model.language_model.backbone.layers[1].mixer
    attn.fuse_qkv()
    names = projection_names(model)
    ids = torch.tensor([[5, 6, 7, 8]])
    with pytest.raises(ValueError, match=r"layers\.1\.mixer\.q_proj.*layers\.1\.mixer\.k_proj"):
        input_amax(model, names, lambda: model(ids, state=model.new_state(1)))


def test_hooks_and_patches_are_removed_even_on_error(tiny_llm):
    model = tiny_llm.engine.model
    names = projection_names(model)

    def fail():
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        input_amax(model, names, fail)
    for name in names:
        module = model.get_submodule(name)
        assert not module._forward_pre_hooks, name
        assert "forward_relu_square" not in vars(module), name
