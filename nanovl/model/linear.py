"""The LM's projection layer: nn.Linear (same parameters and checkpoint keys) through `ops.linear`.

At decode a projection sees 1..16 rows, a matrix-vector product bound by reading the weight; the
skinny-GEMM kernel streams it faster than cuBLAS's choice on most of the 12B shapes (H200,
bench/bench_gemv.py: 1.07-1.23x on six of seven). Prefill, training and CPU calls are F.linear.
A block's first projection may also take a `PendingNorm`: its input before the block's RMSNorm.
"""
from __future__ import annotations

import torch
from torch import nn

from nanovl.ops.linear import add_rms_norm_linear, linear, linear_relu_square
from nanovl.ops.norm import add_rms_norm


class PendingNorm:
    """A pre-norm block's mixer input `rms_norm(residual + x)`, not computed yet: the mixer's first
    projection computes it inside its own kernel (`ops.linear.add_rms_norm_linear`), which at decode
    saves the norm's launch, one per block (63 of a 12B step's ~300 kernels). The stream is the
    same to the bit; the projection differs from the separate norm's by rounding only (the normed
    input does not round to the stream's dtype first).

    `stream` is residual + x, the residual stream the next block continues; a projection (or
    `tensor()`, for a mixer whose first step is not a single projection) sets it."""

    def __init__(self, x: torch.Tensor, residual: torch.Tensor, norm_weight: torch.Tensor, eps: float):
        self.x, self.residual, self.norm_weight, self.eps = x, residual, norm_weight, eps
        self._stream: torch.Tensor | None = None

    @property
    def shape(self) -> torch.Size:
        return self.x.shape

    @property
    def stream(self) -> torch.Tensor:
        if self._stream is None:
            raise RuntimeError("PendingNorm.stream read before any projection consumed the norm")
        return self._stream

    def project(self, weight: torch.Tensor, bias: torch.Tensor | None, relu_square: bool = False) -> torch.Tensor:
        """The projection (relu-squared if asked) of the normed input."""
        y, self._stream = add_rms_norm_linear(self.x, self.residual, self.norm_weight, self.eps, weight, bias,
                                              relu_square=relu_square)
        return y

    def tensor(self) -> torch.Tensor:
        """The normed input itself (one norm kernel, as without this class)."""
        normed, self._stream = add_rms_norm(self.x, self.residual, self.norm_weight, self.eps)
        return normed


def project(x: torch.Tensor | PendingNorm, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T + bias through `ops.linear`, for a tensor or a block's pending norm."""
    return x.project(weight, bias) if isinstance(x, PendingNorm) else linear(x, weight, bias)


class Linear(nn.Linear):
    """nn.Linear whose forward dispatches through `nanovl.ops.linear.linear` (x a tensor or a PendingNorm)."""

    def forward(self, x: torch.Tensor | PendingNorm) -> torch.Tensor:
        return project(x, self.weight, self.bias)

    def forward_relu_square(self, x: torch.Tensor | PendingNorm) -> torch.Tensor:
        """relu(self(x))^2 in one op (the MLP's up projection; one kernel at decode)."""
        if isinstance(x, PendingNorm):
            return x.project(self.weight, self.bias, relu_square=True)
        return linear_relu_square(x, self.weight, self.bias)
