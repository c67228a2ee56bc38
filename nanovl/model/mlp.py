"""Squared-ReLU MLP of the hybrid LM ('-' blocks, SPEC §1b): down_proj(relu(up_proj(x))^2), no gate."""
from __future__ import annotations

import torch
from torch import nn

from nanovl.config import TextConfig
from nanovl.model.linear import Linear


class MLP(nn.Module):
    """up_proj / down_proj named like the checkpoint keys under `backbone.layers.N.mixer.`."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.up_proj = Linear(config.hidden_size, config.intermediate_size, bias=config.mlp_bias)
        self.down_proj = Linear(config.intermediate_size, config.hidden_size, bias=config.mlp_bias)

    def decode_weights(self) -> list[torch.Tensor]:
        """Projection weights in the order a decode step reads them."""
        return [self.up_proj.weight, self.down_proj.weight]

    def allocate_state(self, batch_size: int, *, dtype: torch.dtype, device) -> None:
        """MLP layers keep no inference state."""
        return None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """hidden: [B, T, D] -> [B, T, D]."""
        return self.down_proj(self.up_proj.forward_relu_square(hidden))
