"""GQA causal self-attention of the hybrid LM ('*' blocks, SPEC §1b): no positional encoding, KV cache."""
from __future__ import annotations

import torch
from torch import nn

from nanovl.config import TextConfig
from nanovl.model.linear import Linear
from nanovl.model.state import AttentionLayerState
from nanovl.ops.attention import causal_attention, decode_attention, prefill_attention
from nanovl.ops.linear import linear


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
        self._qkv: tuple[torch.Tensor, torch.Tensor | None] | None = None  # see fuse_qkv

    def fuse_qkv(self) -> None:
        """Move the q/k/v weights (and biases) into one buffer each, the three parameters becoming
        views of it, so inference reads them with one projection: at decode one GEMV of 7168 rows
        instead of three (the k / v ones of 1024 rows stream at ~1.5 TB/s on an H200, bench_gemv).
        State-dict keys and values are unchanged; a later `.to()` or a replaced parameter just
        returns forward to the three projections. The three now share one storage: safetensors'
        `save_file` refuses that, so copy them first (`train.ship.checkpoint_tensors` does)."""
        projs = (self.q_proj, self.k_proj, self.v_proj)
        if any(p.weight.is_meta for p in projs):
            raise ValueError("fuse_qkv: load the weights first")
        weight = torch.cat([p.weight.detach() for p in projs])
        bias = torch.cat([p.bias.detach() for p in projs]) if self.q_proj.bias is not None else None
        for i, p in enumerate(projs):
            p.weight.data = weight[self._qkv_slice(i)]
            if bias is not None:
                p.bias.data = bias[self._qkv_slice(i)]
        self._qkv = (weight, bias)

    def _qkv_slice(self, i: int) -> slice:
        nq, nkv = self.num_heads * self.head_dim, self.num_kv_heads * self.head_dim
        return (slice(0, nq), slice(nq, nq + nkv), slice(nq + nkv, nq + 2 * nkv))[i]

    def _fused_qkv(self) -> tuple[torch.Tensor, torch.Tensor | None] | None:
        """The fused (weight, bias) while the parameters are still its views and no gradient is wanted
        (the fused buffer is not a parameter: training goes through the three projections)."""
        if self._qkv is None or (torch.is_grad_enabled() and self.q_proj.weight.requires_grad):
            return None
        weight, bias = self._qkv
        for i, p in enumerate((self.q_proj, self.k_proj, self.v_proj)):
            start = self._qkv_slice(i).start
            if p.weight.data_ptr() != weight[start].data_ptr() or p.weight.dtype != weight.dtype:
                return None
            if bias is not None and p.bias.data_ptr() != bias[start:].data_ptr():
                return None
        return self._qkv

    def decode_weights(self) -> list[torch.Tensor]:
        """Projection weights in the order a decode step reads them (fused q/k/v as one, when fused)."""
        fused = self._fused_qkv()
        qkv = [fused[0]] if fused is not None else [self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]
        return qkv + [self.o_proj.weight]

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
        fused = self._fused_qkv()
        if fused is not None:
            qkv = linear(hidden, *fused)  # the kernels downstream read q / k / v through their strides
            q, k, v = (qkv[..., self._qkv_slice(i)] for i in range(3))
        else:
            q, k, v = self.q_proj(hidden), self.k_proj(hidden), self.v_proj(hidden)
        q = q.view(bsz, t_len, self.num_heads, self.head_dim)
        k = k.view(bsz, t_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        v = v.view(bsz, t_len, self.num_kv_heads, self.head_dim).transpose(1, 2)
        if state is None:
            o = causal_attention(q, k, v, self.scale)
            return self.o_proj(o.reshape(bsz, t_len, self.num_heads * self.head_dim))
        state.write(k, v, start_pos)
        if t_len == 1:  # decode: one query per row; prefill: causal block of T queries
            o = decode_attention(q[:, 0], state.k, state.v, start_pos + 1, self.scale)[:, None]
        else:
            o = prefill_attention(q, state.k, state.v, start_pos, self.scale)
        return self.o_proj(o.reshape(bsz, t_len, self.num_heads * self.head_dim))
