"""Quantize a loaded model's projections to FP8 in memory (the same numbers `fp8_checkpoint.py`
writes to disk): for benchmarks and tests at shapes no checkpoint here has, e.g. the 12B preset
with random weights."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nanovl.model.fp8_linear import Fp8Linear
from nanovl.quant.fp8_checkpoint import input_scale_of, quantize_weight_fp8


def lm_projection_names(model: nn.Module) -> list[str]:
    """Module names of the language model's linear layers but lm_head (what NVIDIA's FP8 releases
    quantize; the vision tower and projector stay as they are)."""
    lm = getattr(model, "language_model", model)
    prefix = "language_model." if lm is not model else ""
    return [prefix + name for name, m in lm.named_modules()
            if isinstance(m, nn.Linear) and not name.endswith("lm_head")]


@torch.no_grad()
def input_amax(model: nn.Module, names: list[str], run) -> dict[str, float]:
    """The largest |x| each named linear layer receives while `run()` drives the model."""
    seen: dict[str, float] = {}
    undo = []
    for name in names:
        module = model.get_submodule(name)

        def record(module, args, name=name):
            seen[name] = max(seen.get(name, 0.0), float(args[0].detach().abs().amax()))
        undo.append(module.register_forward_pre_hook(record).remove)
        if hasattr(module, "forward_relu_square"):
            # the MLP calls its up projection through this method, which no forward hook sees
            def relu_square(x, module=module, record=record, method=module.forward_relu_square):
                record(module, (x,))
                return method(x)
            module.forward_relu_square = relu_square  # the instance attribute shadows the method
            undo.append(lambda module=module: delattr(module, "forward_relu_square"))
    try:
        run()
    finally:
        for remove in undo:
            remove()
    missing = [n for n in names if n not in seen]
    if missing:
        raise ValueError(f"calibration never ran {missing[:4]} ({len(missing)} in all)")
    return seen


@torch.no_grad()
def quantize_linears_fp8(model: nn.Module, amax: Mapping[str, float]) -> nn.Module:
    """Replace each nn.Linear named in `amax` by an Fp8Linear of its weight (scale amax|W| / 448) and a
    static input scale amax / 448. Returns the model, changed in place."""
    for name, a in amax.items():
        linear = model.get_submodule(name)
        if not isinstance(linear, nn.Linear):
            raise ValueError(f"{name} is a {type(linear).__name__}, not a linear layer")
        fp8 = Fp8Linear(linear.in_features, linear.out_features, linear.bias is not None)
        weight, scale = quantize_weight_fp8(linear.weight)
        fp8.weight.data, fp8.weight_scale.data = weight, scale.to(weight.device)
        fp8.input_scale.data = input_scale_of(a).to(weight.device)
        if linear.bias is not None:
            fp8.bias.data = linear.bias.detach()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, fp8)
    return model
