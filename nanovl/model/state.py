"""Per-sequence inference state of the hybrid LM: Mamba conv/SSM states and attention K/V, per layer.

Rows of one batched state may hold different lengths (`seq_lens`); attention masks each row to its
own length, so a sequence decoded alone and inside a batch gives the same logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from nanovl.ops.attention import kv_cache_write


@dataclass
class MambaLayerState:
    """conv: [B, conv_dim, K-1] last K-1 xBC inputs (model dtype); ssm: [B, H, P, N] fp32."""

    conv: torch.Tensor
    ssm: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"conv": self.conv, "ssm": self.ssm}


@dataclass
class AttentionLayerState:
    """k, v: [B, Hkv, S, Dh] where S is the capacity; row b is valid up to seq_lens[b]."""

    k: torch.Tensor
    v: torch.Tensor

    def tensors(self) -> dict[str, torch.Tensor]:
        return {"k": self.k, "v": self.v}

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def ensure_capacity(self, needed: int) -> None:
        """Grow the time axis (doubling, so decode appends stay amortized O(1))."""
        if needed <= self.capacity:
            return
        new_cap = max(needed, 2 * self.capacity, 16)
        pad = (0, 0, 0, new_cap - self.capacity)
        self.k = torch.nn.functional.pad(self.k, pad)
        self.v = torch.nn.functional.pad(self.v, pad)

    def write(self, k_new: torch.Tensor, v_new: torch.Tensor, start_pos: torch.Tensor) -> None:
        """Store k_new, v_new [B, Hkv, T, Dh] at positions start_pos[b] .. start_pos[b]+T-1 of each row."""
        self.ensure_capacity(int(start_pos.max()) + k_new.shape[2])
        kv_cache_write(self.k, self.v, k_new, v_new, start_pos)


def _pad_time(t: torch.Tensor, cap: int) -> torch.Tensor:
    return torch.nn.functional.pad(t, (0, 0, 0, cap - t.shape[2]))


LayerState = MambaLayerState | AttentionLayerState | None


class LMState:
    """Inference state of every layer (None for MLP layers) plus `seq_lens: LongTensor [B]`."""

    def __init__(self, layers: list[LayerState], seq_lens: torch.Tensor):
        self.layers = layers
        self.seq_lens = seq_lens

    @property
    def batch_size(self) -> int:
        return self.seq_lens.shape[0]

    def _map(self, fn) -> "LMState":
        layers: list[LayerState] = []
        for st in self.layers:
            if st is None:
                layers.append(None)
            else:
                layers.append(type(st)(**{name: fn(t) for name, t in st.tensors().items()}))
        return LMState(layers, fn(self.seq_lens))

    def snapshot(self) -> "LMState":
        """An independent deep copy (later updates of either do not affect the other)."""
        return self._map(lambda t: t.clone())

    def restore(self, snap: "LMState") -> None:
        """Copy `snap` back into this state, in place where the shapes allow (a grown KV cache is replaced)."""
        if len(snap.layers) != len(self.layers) or snap.batch_size != self.batch_size:
            raise ValueError(f"restore: snapshot has {len(snap.layers)} layers x {snap.batch_size} rows, "
                             f"state has {len(self.layers)} x {self.batch_size}")
        for i, (mine, theirs) in enumerate(zip(self.layers, snap.layers)):
            if (mine is None) != (theirs is None) or type(mine) is not type(theirs):
                raise ValueError(f"restore: layer {i} kind differs between snapshot and state")
            if mine is None:
                continue
            for name, src in theirs.tensors().items():
                dst = getattr(mine, name)
                if dst.shape == src.shape:
                    dst.copy_(src)
                else:
                    setattr(mine, name, src.clone())
        self.seq_lens.copy_(snap.seq_lens)

    def select(self, rows: torch.Tensor | list[int]) -> "LMState":
        """A new state holding the given batch rows (copies)."""
        idx = torch.as_tensor(rows, dtype=torch.long, device=self.seq_lens.device)
        return self._map(lambda t: t.index_select(0, idx.to(t.device)))

    @staticmethod
    def cat(states: list["LMState"]) -> "LMState":
        """Stack states along the batch; KV caches are zero-padded to the longest capacity."""
        if not states:
            raise ValueError("LMState.cat: empty list of states")
        n_layers = len(states[0].layers)
        if any(len(s.layers) != n_layers for s in states):
            raise ValueError("LMState.cat: states have different numbers of layers")
        layers: list[LayerState] = []
        for i in range(n_layers):
            parts = [s.layers[i] for s in states]
            if parts[0] is None:
                layers.append(None)
            elif isinstance(parts[0], AttentionLayerState):
                cap = max(p.capacity for p in parts)
                layers.append(AttentionLayerState(torch.cat([_pad_time(p.k, cap) for p in parts]),
                                                  torch.cat([_pad_time(p.v, cap) for p in parts])))
            else:
                layers.append(MambaLayerState(torch.cat([p.conv for p in parts]),
                                              torch.cat([p.ssm for p in parts])))
        return LMState(layers, torch.cat([s.seq_lens for s in states]))

    def nbytes(self) -> int:
        """Bytes held by all state tensors."""
        return sum(t.numel() * t.element_size() for st in self.layers if st is not None
                   for t in st.tensors().values())
