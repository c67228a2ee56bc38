"""GQA causal self-attention of the hybrid LM ('*' blocks, SPEC §1b): no positional encoding, KV cache."""
from __future__ import annotations

import torch
from torch import nn

from nanovl.config import TextConfig
from nanovl.model.linear import Linear
from nanovl.model.state import AttentionLayerState
from nanovl.ops.attention import causal_attention, decode_attention, prefill_attention


class Attention(nn.Module):
    """q/k/v/o projections named like the checkpoint keys under `backbone.layers.N.mixer.`."""

    def __init__(self, config: TextConfig):
        super().__init__()
        c = config
        self.num_heads, self.num_kv_heads, self.head_dim = c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.scale = c.head_dim ** -0.5
        self.q_proj = Linear(c.hidden_size, self.num_heads * c.head_dim, bias=c.attention_bias)
        self.k_proj = Linear(c.hidden_size, self.num_kv_heads * c.head_dim, bias=c.attention_bias)
        self.v_proj = Linear(c.hidden_size, self.num_kv_heads * c.head_dim, bias=c.attention_bias)
        self.o_proj = Linear(self.num_heads * c.head_dim, c.hidden_size, bias=c.attention_bias)

    def allocate_state(self, batch_size: int, *, dtype: torch.dtype, device) -> AttentionLayerState:
        """Empty KV cache [B, Hkv, 0, Dh]; it grows on the first write."""
        shape = (batch_size, self.num_kv_heads, 0, self.head_dim)
        return AttentionLayerState(torch.zeros(shape, dtype=dtype, device=device),
                                   torch.zeros(shape, dtype=dtype, device=device))

    def forward(self, hidden: torch.Tensor, state: AttentionLayerState | None,
                start_pos: torch.Tensor | None) -> torch.Tensor:
        """hidden: [B, T, D] (pre-normed); start_pos: [B] tokens already cached per row. Returns [B, T, D].
        state None: a whole sequence from position 0 with no cache (training)."""
        bsz, t_len, _ = hidden.shape
        q = self.q_proj(hidden).view(bsz, t_len, self.num_heads, self.head_dim)
        k = self.k_proj(hidden).view(bsz, t_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(hidden).view(bsz, t_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if state is None:
            o = causal_attention(q, k, v, self.scale)
            return self.o_proj(o.reshape(bsz, t_len, self.num_heads * self.head_dim))
        state.write(k, v, start_pos)
        if t_len == 1:  # decode: one query per row; prefill: causal block of T queries
            o = decode_attention(q[:, 0], state.k, state.v, start_pos + 1, self.scale)[:, None]
        else:
            o = prefill_attention(q, state.k, state.v, start_pos, self.scale)
        return self.o_proj(o.reshape(bsz, t_len, self.num_heads * self.head_dim))
