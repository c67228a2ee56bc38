"""Nemotron-H hybrid causal LM (SPEC Part B): embeddings, one pre-norm residual block per pattern
character ('M' Mamba2, '*' attention, '-' MLP), final norm_f and an untied lm_head.

Attribute names equal the checkpoint keys, so `state_dict()` keys are the official ones.
"""
from __future__ import annotations

import torch
from torch import nn

from nanovl.config import TextConfig
from nanovl.model.attention import Attention
from nanovl.model.linear import Linear
from nanovl.model.mamba2 import Mamba2Mixer
from nanovl.model.mlp import MLP
from nanovl.model.state import LayerState, LMState
from nanovl.ops.norm import add_rms_norm, rms_norm

MIXERS = {"M": Mamba2Mixer, "*": Attention, "-": MLP}


class RMSNorm(nn.Module):
    """RMSNorm with `weight` [D]; fp32 math (see ops.norm.rms_norm_ref)."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps)

    def add_and_norm(self, x: torch.Tensor, residual: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(norm(residual + x), residual + x) in one op."""
        return add_rms_norm(x, residual, self.weight, self.eps)


class HybridBlock(nn.Module):
    """h = h + mixer(norm(h)); `kind` is the pattern character.

    The residual add is deferred: a block returns its mixer output and the next block (or norm_f)
    adds it inside its own norm's kernel, which saves one launch per layer at decode (62 of a 12B
    step's ~640 kernels). The arithmetic is unchanged: the sum rounds to the stream's dtype first.
    """

    def __init__(self, config: TextConfig, kind: str):
        super().__init__()
        self.kind = kind
        self.norm = RMSNorm(config.hidden_size, config.layer_norm_epsilon)
        self.mixer = MIXERS[kind](config)

    def forward(self, hidden: torch.Tensor, pending: torch.Tensor | None, state: LayerState,
                start_pos: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden: the residual stream [B, T, D] without `pending`, the previous block's output (None
        for the first block). Returns (stream with `pending` added, this block's output)."""
        if pending is None:
            x = self.norm(hidden)
        else:
            x, hidden = self.norm.add_and_norm(pending, hidden)
        if self.kind == "M":
            x = self.mixer(x, state)
        elif self.kind == "*":
            x = self.mixer(x, state, start_pos)
        else:
            x = self.mixer(x)
        return hidden, x


class Backbone(nn.Module):
    """`backbone.embeddings`, `backbone.layers`, `backbone.norm_f`."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.embeddings = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(HybridBlock(config, kind) for kind in config.pattern)
        self.norm_f = RMSNorm(config.hidden_size, config.layer_norm_epsilon)


class NemotronHForCausalLM(nn.Module):
    """The hybrid LM. `forward(input_ids [B, T]) -> logits [B, T, V]`, optionally continuing an LMState."""

    def __init__(self, config: TextConfig):
        super().__init__()
        self.config = config
        self.backbone = Backbone(config)
        self.lm_head = Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.backbone.embeddings.weight

    @torch.no_grad()
    def decode_projection_weights(self) -> list[torch.Tensor]:
        """The weights of the projections one decode step runs, in the order it runs them: the
        chain of the batch-1 GEMV's L2 prefetch (`ops/linear/l2_prefetch.py`)."""
        return [w for block in self.backbone.layers for w in block.mixer.decode_weights()] + [self.lm_head.weight]

    def embed(self, input_ids: torch.Tensor) -> torch.Tensor:
        """input_ids: LongTensor [B, T] -> embeddings [B, T, D]."""
        if input_ids.dtype not in (torch.long, torch.int32):
            raise ValueError(f"input_ids must be an integer tensor, got dtype {input_ids.dtype}")
        return self.backbone.embeddings(input_ids)

    def new_state(self, batch_size: int = 1, *, dtype: torch.dtype | None = None, device=None) -> LMState:
        """A zero state for `batch_size` empty sequences (conv/KV in `dtype`, default the model's; SSM fp32)."""
        w = self.backbone.embeddings.weight
        dtype = w.dtype if dtype is None else dtype
        device = w.device if device is None else device
        layers = [blk.mixer.allocate_state(batch_size, dtype=dtype, device=device) for blk in self.backbone.layers]
        return LMState(layers, torch.zeros(batch_size, dtype=torch.long, device=device))

    def forward(self, input_ids: torch.Tensor | None = None, *, inputs_embeds: torch.Tensor | None = None,
                state: LMState | None = None, logits_to_keep: int = 0) -> torch.Tensor:
        """Run T new tokens per row.

        Args:
            input_ids: LongTensor [B, T], or None when `inputs_embeds` [B, T, D] is given.
            state: continue from this state and update it in place (rows may hold different
                lengths); None runs the rows from position 0 keeping no state (no KV cache
                written: the training forward).
            logits_to_keep: if > 0, only the last that many positions get logits.
        Returns:
            logits [B, T, V] (or [B, logits_to_keep, V]) in the model dtype.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("forward: give exactly one of input_ids or inputs_embeds")
        hidden = self.embed(input_ids) if inputs_embeds is None else inputs_embeds
        if hidden.dim() != 3 or hidden.shape[1] == 0:
            raise ValueError(f"forward: expected input of shape [B, T>0] or [B, T>0, D], got {tuple(hidden.shape)}")
        bsz, t_len, _ = hidden.shape
        pending = None
        if state is None:
            for block in self.backbone.layers:
                hidden, pending = block(hidden, pending, None, None)
            return self._logits(hidden, pending, logits_to_keep)
        if state.batch_size != bsz or len(state.layers) != len(self.backbone.layers):
            raise ValueError(f"forward: state holds {state.batch_size} rows x {len(state.layers)} layers, "
                             f"input has {bsz} rows for {len(self.backbone.layers)} layers")
        start_pos = state.seq_lens.clone()
        for block, layer_state in zip(self.backbone.layers, state.layers):
            hidden, pending = block(hidden, pending, layer_state, start_pos)
        state.seq_lens += t_len
        return self._logits(hidden, pending, logits_to_keep)

    def _logits(self, hidden: torch.Tensor, pending: torch.Tensor | None, logits_to_keep: int) -> torch.Tensor:
        """lm_head(norm_f(hidden + pending)) at the last `logits_to_keep` positions (all if 0)."""
        if logits_to_keep > 0:
            hidden = hidden[:, -logits_to_keep:]
            pending = None if pending is None else pending[:, -logits_to_keep:]
        if pending is None:
            return self.lm_head(self.backbone.norm_f(hidden))
        return self.lm_head(self.backbone.norm_f.add_and_norm(pending, hidden)[0])
