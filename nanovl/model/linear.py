"""The LM's projection layer: nn.Linear (same parameters and checkpoint keys) through `ops.linear`.

At decode a projection sees 1..16 rows, a matrix-vector product bound by reading the weight; the
skinny-GEMM kernel streams it faster than cuBLAS's choice on most of the 12B shapes (H200,
bench/bench_gemv.py: 1.07-1.23x on six of seven). Prefill, training and CPU calls are F.linear.
"""
from __future__ import annotations

import torch
from torch import nn

from nanovl.ops.linear import linear, linear_relu_square


class Linear(nn.Linear):
    """nn.Linear whose forward dispatches through `nanovl.ops.linear.linear`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return linear(x, self.weight, self.bias)

    def forward_relu_square(self, x: torch.Tensor) -> torch.Tensor:
        """relu(self(x))^2 in one op (the MLP's up projection; one kernel at decode)."""
        return linear_relu_square(x, self.weight, self.bias)
