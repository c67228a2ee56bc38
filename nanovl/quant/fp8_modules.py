"""Quantize a loaded model's projections to FP8 in memory (the same numbers `fp8_checkpoint.py`
writes to disk): for benchmarks and tests at shapes no checkpoint here has, e.g. the 12B preset
with random weights."""
from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import nn

from nanovl.model.fp8_linear import Fp8Linear
from nanovl.quant.calibrate import input_amax, projection_names
from nanovl.quant.fp8_checkpoint import input_scale_of, quantize_weight_fp8


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
        model.set_submodule(name, fp8)
    return model


def quantize_projections_fp8(model: nn.Module, run: Callable[[], object]) -> nn.Module:
    """Quantize the LM's projections (`calibrate.projection_names`) with input scales calibrated while
    `run()` drives the model (`calibrate.input_amax`). Returns the model, changed in place."""
    names = projection_names(model)
    return quantize_linears_fp8(model, input_amax(model, names, run))
