"""Decode-step CUDA graphs: one captured LM step per batch-size bucket, replayed over fixed state rows.

Usage (the model runner owns `state`, a pool whose rows 0..n-1 hold the decoding sequences):

    graphs = DecodeCudaGraphs(lm, state, max_seq_len=4096)   # grows the KV caches once
    graphs.capture()                                         # before rows hold live sequences
    logits = graphs.step(token_ids)                          # LongTensor [n] -> logits [n, V]

`step` runs the smallest captured bucket b >= n over rows 0..b-1 and advances rows 0..n-1
exactly as `lm(token_ids[:, None], state=rows 0..n-1)` would. Rows n..b-1 are saved and
restored around the replay (`preserve_padding=False` skips that when they are free slots: their
`seq_lens` are zeroed before the replay and their other state is left as garbage). No row may
grow past `max_seq_len`: the owner recaptures with a larger one first.
Graphs hold the addresses of the state tensors: replacing a tensor (a KV cache grown past
`max_seq_len`, say) makes `step` raise, and the owner recaptures.
"""
from __future__ import annotations

import torch

from nanovl.model.state import AttentionLayerState, LMState, MambaLayerState
from nanovl.ops import pdl
from nanovl.ops.attention import kv_cache_write

DEFAULT_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class _StaticKV(AttentionLayerState):
    """A KV view of fixed capacity: `write` skips the growth check, so it never syncs with the host."""

    def write(self, k_new: torch.Tensor, v_new: torch.Tensor, start_pos: torch.Tensor) -> None:
        # a row past capacity (the owner's bug) overwrites its last slot (kv_cache_write clamps)
        # instead of killing the CUDA context with an out-of-bounds index
        kv_cache_write(self.k, self.v, k_new, v_new, start_pos)


def _rows(state: LMState, lo: int, hi: int) -> LMState:
    """Rows lo..hi-1 of `state` as views (writes go through to `state`)."""
    layers = []
    for st in state.layers:
        if isinstance(st, AttentionLayerState):
            layers.append(_StaticKV(st.k[lo:hi], st.v[lo:hi]))
        elif isinstance(st, MambaLayerState):
            layers.append(MambaLayerState(st.conv[lo:hi], st.ssm[lo:hi]))
        else:
            layers.append(None)
    return LMState(layers, state.seq_lens[lo:hi])


def _pointers(state: LMState) -> list[int]:
    return [t.data_ptr() for st in state.layers if st is not None for t in st.tensors().values()] \
        + [state.seq_lens.data_ptr()]


class DecodeCudaGraphs:
    """CUDA graphs of one decode step of `lm` per batch-size bucket.

    Args:
        lm: NemotronHForCausalLM on a CUDA device.
        state: LMState pool (rows = slots); its KV caches are grown to `max_seq_len` here.
        max_seq_len: most tokens any row will hold (prompt + generated).
        buckets: batch sizes to capture (those above the pool size are dropped).
    """

    def __init__(self, lm: torch.nn.Module, state: LMState, *, max_seq_len: int,
                 buckets: tuple[int, ...] = DEFAULT_BUCKETS):
        if not state.seq_lens.is_cuda:
            raise ValueError("DecodeCudaGraphs needs a CUDA state")
        self.lm, self.state = lm, state
        self.buckets = sorted({b for b in buckets if 1 <= b <= state.batch_size})
        if not self.buckets:
            raise ValueError(f"no bucket in {buckets} fits a pool of {state.batch_size} rows")
        for st in state.layers:
            if isinstance(st, AttentionLayerState):
                st.ensure_capacity(max_seq_len)
        self.max_seq_len = max_seq_len
        self.input_ids = torch.zeros(self.buckets[-1], 1, dtype=torch.long, device=state.seq_lens.device)
        self.graphs: dict[int, torch.cuda.CUDAGraph] = {}
        self.logits: dict[int, torch.Tensor] = {}
        self._ptrs: list[int] = []

    def _forward(self, b: int) -> torch.Tensor:
        return self.lm(self.input_ids[:b], state=_rows(self.state, 0, b), logits_to_keep=1)[:, -1]

    @torch.inference_mode()
    def capture(self) -> None:
        """Capture every bucket (largest first, one shared memory pool).

        The warm-up steps run for real: they change the conv/SSM states of the pool's rows, so
        call this before the rows hold live sequences (their `seq_lens` are restored)."""
        seq_lens = self.state.seq_lens.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            # compile kernels and create library handles outside the capture
            for b in self.buckets:
                with pdl.decode_batch(b):
                    self._forward(b)
                self.state.seq_lens.copy_(seq_lens)
        torch.cuda.current_stream().wait_stream(stream)
        torch.cuda.synchronize()
        pool = None
        for b in reversed(self.buckets):
            graph = torch.cuda.CUDAGraph()
            # kernels read the launch mode (programmatic dependent launch) as they are captured
            with pdl.decode_batch(b), torch.cuda.graph(graph, pool=pool):
                self.logits[b] = self._forward(b)
            pool = graph.pool()
            self.graphs[b] = graph
            self.state.seq_lens.copy_(seq_lens)
        torch.cuda.synchronize()
        self._ptrs = _pointers(self.state)

    def bucket_for(self, n: int) -> int:
        """Smallest captured batch size >= n."""
        for b in self.buckets:
            if b >= n:
                return b
        raise ValueError(f"decode batch {n} exceeds the largest captured bucket {self.buckets[-1]}")

    @torch.inference_mode()
    def step(self, token_ids: torch.Tensor, *, preserve_padding: bool = True) -> torch.Tensor:
        """One decode step for rows 0..n-1.

        Args:
            token_ids: LongTensor [n] (on the state's device), the newest token of each row.
            preserve_padding: keep rows n..bucket-1 unchanged (copies them around the replay).
        Returns:
            logits [n, V] (a view of a static buffer, overwritten by the next step of that bucket).
        """
        if not self.graphs:
            raise RuntimeError("DecodeCudaGraphs.step before capture()")
        if _pointers(self.state) != self._ptrs:
            raise RuntimeError("state tensors were replaced since capture(); recapture the graphs")
        n = token_ids.shape[0]
        b = self.bucket_for(n)
        self.input_ids[:n, 0].copy_(token_ids)
        saved = None
        if b > n and preserve_padding:
            saved = _rows(self.state, n, b).snapshot()
        elif b > n:
            self.state.seq_lens[n:b].zero_()  # free slots never creep towards the capacity
        self.graphs[b].replay()
        if saved is not None:
            _rows(self.state, n, b).restore(saved)
        return self.logits[b][:n]
