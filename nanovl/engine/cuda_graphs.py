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

from typing import Sequence

import torch

from nanovl.model.state import AttentionLayerState, LMState, MambaLayerState
from nanovl.ops import pdl
from nanovl.ops.attention import kv_cache_write
from nanovl.ops.linear import l2_prefetch

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


def _recurrent(state: LMState) -> list[torch.Tensor]:
    """The conv and SSM state tensors of every Mamba layer (what a step changes besides K/V and lengths)."""
    return [t for st in state.layers if isinstance(st, MambaLayerState) for t in (st.conv, st.ssm)]


def _pointers(state: LMState) -> list[int]:
    # read the attributes directly: this runs twice a replayed step, over every layer
    out = []
    for st in state.layers:
        if isinstance(st, AttentionLayerState):
            out += (st.k.data_ptr(), st.v.data_ptr())
        elif isinstance(st, MambaLayerState):
            out += (st.conv.data_ptr(), st.ssm.data_ptr())
    out.append(state.seq_lens.data_ptr())
    return out


class DecodeCudaGraphs:
    """CUDA graphs of one decode step of `lm` per batch-size bucket.

    Args:
        lm: NemotronHForCausalLM on a CUDA device.
        state: LMState pool (rows = slots); its KV caches are grown to `max_seq_len` here.
        max_seq_len: most tokens any row will hold (prompt + generated).
        buckets: batch sizes to capture (those above the pool size are dropped).
    """

    needs_cuda = True  # nanovl.testing.fake_graphs runs the capture and replay eagerly, on a CPU too

    def __init__(self, lm: torch.nn.Module, state: LMState, *, max_seq_len: int,
                 buckets: tuple[int, ...] = DEFAULT_BUCKETS):
        if self.needs_cuda and not state.seq_lens.is_cuda:
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
        self._indices: dict[tuple[int, ...], torch.Tensor] = {}
        if hasattr(lm, "decode_projection_weights"):  # each batch-1 GEMV may warm the next one's weight
            l2_prefetch.set_chain(lm.decode_projection_weights())

    def _forward(self, b: int) -> torch.Tensor:
        return self.lm(self.input_ids[:b], state=_rows(self.state, 0, b), logits_to_keep=1)[:, -1]

    @torch.inference_mode()
    def capture(self, *, preserve_state: bool = False, rows: Sequence[int] | None = None) -> None:
        """Capture every bucket (largest first, one shared memory pool).

        The warm-up steps run for real: they change the conv/SSM states of the pool's rows below the
        largest bucket (their `seq_lens` are restored). Call this before the rows hold live
        sequences, or pass `preserve_state=True`, which copies those rows' conv/SSM states aside and
        back (a model runner recapturing under live requests). `rows` narrows that copy to the rows
        holding requests: a free slot is reset when its next request starts, and at 64 slots of the
        12B model the whole pool's state is 9.5 GB. The K/V the steps write land at each row's
        `seq_lens`, past what the row holds, where the row's next real step writes before anything reads."""
        touched = self.buckets[-1]
        keep = sorted({r for r in (range(touched) if rows is None else rows) if 0 <= r < touched})
        saved, where = None, None
        if preserve_state and keep:
            where = torch.tensor(keep, dtype=torch.long, device=self.state.seq_lens.device)
            saved = [t.index_select(0, where) for t in _recurrent(self.state)]
        self._capture()
        if saved is not None:
            for dst, src in zip(_recurrent(self.state), saved):
                dst.index_copy_(0, where, src)

    def is_current(self) -> bool:
        """False once a state tensor the graphs read was replaced (a grown KV cache): recapture."""
        return bool(self.graphs) and _pointers(self.state) == self._ptrs

    def _check_replayable(self, caller: str) -> None:
        if not self.graphs:
            raise RuntimeError(f"DecodeCudaGraphs.{caller} before capture()")
        if not self.is_current():
            raise RuntimeError("state tensors were replaced since capture(); recapture the graphs")

    def _capture(self) -> None:
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

    def _index(self, rows: list[int]) -> torch.Tensor:
        """`rows` as a device LongTensor, made once per distinct list. A fresh one each step would be
        a copy from pageable host memory, which torch makes wait for the stream to drain: for the
        step the engine launched ahead (engine/lookahead.py) to finish, leaving the GPU idle while
        the host launches the next graph."""
        key = tuple(rows)
        idx = self._indices.get(key)
        if idx is None:
            if len(self._indices) >= 4096:  # slot sets come and go with requests: keep it bounded
                self._indices.clear()
            idx = self._indices[key] = torch.tensor(key, dtype=torch.long, device=self.state.seq_lens.device)
        return idx

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
        self._check_replayable("step")
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

    @torch.inference_mode()
    def step_rows(self, rows: list[int], token_ids: torch.Tensor, *, keep: list[int] | tuple = ()) -> torch.Tensor:
        """One decode step for any pool rows (a model runner's slots), in the caller's order.

        Replays the smallest bucket b covering max(rows) + 1 rows. Its other rows step too, on token
        0: those in `keep` (rows holding a request that is not decoding now) get their conv/SSM
        states and `seq_lens` copied back after the replay; their K/V takes one write at their
        length, past what they hold, which their own next step overwrites before reading it, as long
        as that length is below the capacity (the caller checks). The rest are free rows: their
        `seq_lens` are zeroed and their state is left as garbage.

        Args:
            rows: distinct pool rows; token_ids: LongTensor [len(rows)] on the state's device.
        Returns:
            logits [len(rows), V], row i for rows[i] (a copy).
        """
        self._check_replayable("step_rows")
        if not rows or len(set(rows)) != len(rows) or min(rows) < 0:
            raise ValueError(f"step_rows: rows must be distinct non-negative pool rows, got {rows}")
        b = self.bucket_for(max(rows) + 1)
        idx = self._index(rows)
        self.input_ids[:b, 0].zero_()
        self.input_ids[idx, 0] = token_ids
        stepping, kept = set(rows), set(keep)
        idle = [r for r in range(b) if r not in stepping]
        held = [r for r in idle if r in kept]
        free = [r for r in idle if r not in kept]
        saved = []
        if held:
            hidx = self._index(held)
            saved = [(t, hidx, t.index_select(0, hidx)) for t in _recurrent(self.state) + [self.state.seq_lens]]
        if free:
            self.state.seq_lens[self._index(free)] = 0
        self.graphs[b].replay()
        for t, hidx, rows_before in saved:
            t.index_copy_(0, hidx, rows_before)
        return self.logits[b].index_select(0, idx)
