"""A projection stored in FP8 (ModelOpt's "FP8" checkpoints): an e4m3 weight, its per-tensor
`weight_scale`, and the calibrated per-tensor `input_scale` x is quantized with (`ops.fp8_linear`).

It replaces `Linear` / `nn.Linear` wherever the checkpoint holds a `weight_scale` beside the weight
(`model/quantized.py`), with the checkpoint's key names, so the loader fills it like any module.
Without an `input_scale` the input is scaled at run time: per token (amax of each row / 448) for
ModelOpt's FP8_PER_CHANNEL_PER_TOKEN, whose weight scales are per output channel; per tensor
(amax(|x|) / 448 per call, as vLLM does) for an "FP8" checkpoint that lacks it.
"""
from __future__ import annotations

import torch
from torch import nn

from nanovl.ops.fp8_linear import FP8_DTYPE, FP8_MAX, fp8_linear, fp8_linear_relu_square, per_token_scale


class Fp8Linear(nn.Module):
    """y = fp8_linear(x, weight, weight_scale, input_scale, bias); bias (if any) in the model dtype."""

    # tensors that keep their own dtype whatever dtype the model loads in (`loader.load_weights`)
    fixed_dtype_tensors = ("weight", "weight_scale", "input_scale")

    def __init__(self, in_features: int, out_features: int, bias: bool, *,
                 weight_scale_shape: tuple[int, ...] = (), input_scale_shape: tuple[int, ...] | None = (),
                 per_token: bool = False):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.per_token = per_token and input_scale_shape is None
        self.weight = nn.Parameter(torch.empty(out_features, in_features, dtype=FP8_DTYPE), requires_grad=False)
        self.weight_scale = nn.Parameter(torch.ones(weight_scale_shape), requires_grad=False)
        self.input_scale = (nn.Parameter(torch.ones(input_scale_shape), requires_grad=False)
                            if input_scale_shape is not None else None)
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None

    def _scale_of(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            return self.input_scale
        if self.per_token:
            return per_token_scale(x)
        return (x.detach().abs().amax().float() / FP8_MAX).clamp_min(1e-12)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return fp8_linear(x, self.weight, self.weight_scale, self._scale_of(x), self.bias)

    def forward_relu_square(self, x: torch.Tensor) -> torch.Tensor:
        """relu(self(x))^2 in one op at decode (the MLP's up projection), as `Linear` offers."""
        return fp8_linear_relu_square(x, self.weight, self.weight_scale, self._scale_of(x), self.bias)

    def _apply(self, fn, recurse=True):
        # `.to(dtype)` / `.half()` must not turn the e4m3 weight or the fp32 scales into the model
        # dtype (a bf16 scale would round): those tensors only follow device moves
        fixed = {id(t) for t in (self.weight, self.weight_scale, self.input_scale) if t is not None}

        def device_only(t: torch.Tensor) -> torch.Tensor:
            out = fn(t)
            return out if id(t) not in fixed or out.dtype == t.dtype else t.to(out.device)

        return super()._apply(device_only, recurse)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}, fp8 e4m3, input_scale={self._input_mode()}")

    def _input_mode(self) -> str:
        return "static" if self.input_scale is not None else "per token" if self.per_token else "dynamic"
