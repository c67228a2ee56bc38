"""Quantize a loaded model's projections to FP8 in memory (the same numbers `fp8_checkpoint.py`
writes to disk): for benchmarks and tests at shapes no checkpoint here has, e.g. the 12B preset
with random weights. The input amax comes from `calibrate.input_amax`."""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from nanovl.model.fp8_linear import Fp8Linear
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
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, fp8)
    return model
