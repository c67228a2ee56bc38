"""ModelRunner: owns the state pool and runs the model for one SchedulerOutput (keep minimal).

The pool is one LMState with a row per slot. A prefill chunk runs on its row alone (B=1);
all decoding rows run as one batched forward (`decode`). When the decode batch is the whole
pool in slot order the pool is updated in place, with fixed shapes — the case a CUDA-graph
capture per batch-size bucket starts from. Rows on consecutive slots (every prefill, most
decode batches) run on views of the pool, also in place, so no step copies a row's K/V;
only a scattered decode batch is gathered and scattered back.

With `cuda_graphs=True` on a GPU, a decode batch replays a captured CUDA graph
(`engine/cuda_graphs.py`) of the smallest bucket b covering its highest slot: row r of the graph is
slot r, and slots of the bucket that hold a request not decoding now (prefilling, say) get their
recurrent state put back after the replay (`step_rows`). The graphs are captured on the first
decode step and again whenever the K/V caches were grown (a new capacity, twice the longest row,
is reserved first so that happens rarely). A batch with a slot past the largest bucket (64)
decodes eagerly.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from nanovl.engine.cuda_graphs import DEFAULT_BUCKETS, DecodeCudaGraphs
from nanovl.engine.outputs import ModelRunnerOutput, SchedulerOutput
from nanovl.model.state import AttentionLayerState, LMState, MambaLayerState

# K/V capacity reserved for the graphs: at least this many tokens, a power of two
MIN_GRAPH_CAPACITY = 256


@dataclass
class _EncodedMedia:
    """Encoded media of one request: rows of `embeds` fill the `<image>` ids at `positions`."""

    positions: list[int]  # sorted prompt positions
    embeds: torch.Tensor  # [M, D]


class ModelRunner:
    """Runs NemotronVL or NemotronHForCausalLM over a pool of `num_slots` state rows.

    Args:
        model: the loaded model (VL models have `.language_model`).
        num_slots: rows of the state pool (= EngineConfig.max_num_seqs).
        cuda_graphs: replay captured decode steps on a GPU (see the module docstring).
        max_model_len: most tokens a row will hold (caps the K/V reserved for the graphs).
    """

    def __init__(self, model: torch.nn.Module, *, num_slots: int, cuda_graphs: bool = False,
                 max_model_len: int | None = None) -> None:
        self.model = model
        self.lm = getattr(model, "language_model", model)
        self.is_vl = self.lm is not model
        self.vocab_size = self.lm.config.vocab_size
        weight = self.lm.backbone.embeddings.weight
        self.device, self.dtype = weight.device, weight.dtype
        self.pool: LMState = self.lm.new_state(num_slots)
        self._media: dict[str, _EncodedMedia] = {}
        # prompt tokens actually run through the model (prefix reuse is checked against it)
        self.num_prefill_tokens = 0
        self.use_cuda_graphs = cuda_graphs and self.device.type == "cuda"
        self.max_model_len = max_model_len
        self._graphs: DecodeCudaGraphs | None = None
        # the requests holding a slot: a replayed bucket's rows that hold one not decoding keep their state
        self._slot_of: dict[str, int] = {}
        # tokens each occupied slot's state holds, kept on the host: the graph path sizes its K/V
        # from it without reading `pool.seq_lens` back (a sync that would stall a lookahead launch)
        self._lens: dict[int, int] = {}
        self.num_graph_steps = 0  # decode steps served by a graph replay
        self.num_graph_captures = 0

    # -------------------------------------------------------------- requests
    @torch.inference_mode()
    def start_request(self, req_id: str, slot: int, prompt_token_ids: list[int], *, mm_input=None,
                      prefix=None) -> list[int]:
        """Reset `slot` (or load the prefix state into it) and encode the request's media.

        Args:
            prompt_token_ids: the processor's ids (media spans laid out provisionally).
            mm_input: nanovl.processor.MultiModalInput or None.
            prefix: PrefixHandle whose state covers the first `prefix.num_tokens` ids, or None.
        Returns:
            the final prompt ids (same length; EVS frames get their true token counts).
        """
        for other in [r for r, s in self._slot_of.items() if s == slot]:
            del self._slot_of[other]  # a slot has one owner: an aborted request's entry goes
        self._slot_of[req_id] = slot
        start = 0
        if prefix is None:
            self.write_rows([slot], self.lm.new_state(1, device=self.device))
        else:
            self.write_rows([slot], prefix.state)
            start = int(prefix.num_tokens)
        self._lens[slot] = start
        ids = list(prompt_token_ids)
        if mm_input is not None and self.is_vl:
            ids = self._encode_media(req_id, ids, mm_input, skip_before=start)
        if prefix is not None:
            ids[:start] = prefix.token_ids[:start]
        return ids

    def release(self, req_id: str) -> None:
        """Forget a finished request's media embeddings and its hold on its slot."""
        self._media.pop(req_id, None)
        slot = self._slot_of.pop(req_id, None)
        if slot is not None:
            self._lens.pop(slot, None)

    def _encode_media(self, req_id: str, ids: list[int], mm, *, skip_before: int) -> list[int]:
        items = [it for it in mm.items if it.end > skip_before]
        images = [it for it in items if it.kind == "image"]
        encoded: dict[int, torch.Tensor] = {}
        if images:
            # one vision batch for all images of the prompt
            tiles = torch.cat([it.pixel_values for it in images]).to(self.device, self.dtype)
            out = self.model.encode_images(tiles)  # [N, tokens_per_tile, D]
            sizes = [it.pixel_values.shape[0] for it in images]
            for it, emb in zip(images, out.split(sizes)):
                encoded[id(it)] = emb.flatten(0, 1)
        positions: list[int] = []
        embeds: list[torch.Tensor] = []
        for it in items:
            counts = None
            if it.kind == "video":
                pv = it.pixel_values.to(self.device, self.dtype)
                encoded[id(it)], counts = self.model.encode_video(pv, it.pruning_rate)
            span = mm.span_ids(it, counts)
            if len(span) != it.length:
                raise ValueError(f"{it.name}: rebuilt span has {len(span)} ids, planned {it.length}")
            ids[it.offset:it.end] = span
            positions += [it.offset + i for i, t in enumerate(span) if t == mm.image_token_id]
            embeds.append(encoded[id(it)])
        if embeds:
            self._media[req_id] = _EncodedMedia(positions, torch.cat(embeds))
        return ids

    # -------------------------------------------------------------- forward
    @torch.inference_mode()
    def execute(self, sched: SchedulerOutput) -> ModelRunnerOutput:
        """Run every prefill chunk, then the batched decode.

        Returns:
            logits [R, V] (float32) for `sched.sampling_req_ids`, in that order.
        """
        rows: list[torch.Tensor] = []
        for chunk in sched.prefills:
            logits = self.prefill(chunk.req_id, chunk.slot, chunk.start, chunk.token_ids)
            if chunk.samples:
                rows.append(logits)
        if sched.decode_req_ids:
            decoded = self.decode(sched.decode_slots, sched.decode_token_ids)
            if not rows:  # a decode-only step (the common one) skips the split and the restack
                return ModelRunnerOutput(sched.sampling_req_ids, decoded.float())
            rows.extend(decoded.unbind(0))
        logits = torch.stack(rows).float() if rows else torch.empty(0, self.vocab_size)
        return ModelRunnerOutput(sched.sampling_req_ids, logits)

    def prefill(self, req_id: str, slot: int, start: int, token_ids: list[int]) -> torch.Tensor:
        """Feed `token_ids` (prompt positions start..) to `slot`; returns the last logits [V]."""
        ids = torch.tensor([token_ids], dtype=torch.long, device=self.device)
        state = self._rows_view(slot, slot + 1, len(token_ids))
        media = self._media.get(req_id)
        image_embeds = None
        if media is not None:
            lo = bisect.bisect_left(media.positions, start)
            hi = bisect.bisect_left(media.positions, start + len(token_ids))
            if hi > lo:
                image_embeds = media.embeds[lo:hi]
        if image_embeds is not None:
            embeds = self.model.embed_inputs(ids, image_embeds)
            logits = self.lm(inputs_embeds=embeds, state=state, logits_to_keep=1)
        else:
            logits = self.lm(ids, state=state, logits_to_keep=1)
        self._sync_view(slot, slot + 1, state)
        self._lens[slot] = start + len(token_ids)
        self.num_prefill_tokens += len(token_ids)
        return logits[0, -1]

    def decode(self, slots: list[int], token_ids: list[int] | torch.Tensor) -> torch.Tensor:
        """One token for each of `slots` in one forward. Returns logits [len(slots), V].

        `token_ids` may be a LongTensor already on the device (the engine's lookahead feeds the
        previous step's argmax without reading it back)."""
        for slot in slots:
            self._lens[slot] = self._lens.get(slot, 0) + 1
        if isinstance(token_ids, torch.Tensor):
            tokens = token_ids.to(self.device, torch.long)
        else:
            tokens = torch.tensor(token_ids, dtype=torch.long, device=self.device)
        if self.use_cuda_graphs:
            logits = self._graph_decode(slots, tokens)
            if logits is not None:
                return logits
        ids = tokens.unsqueeze(1)  # [B, 1]
        if slots == list(range(self.pool.batch_size)):
            return self.lm(ids, state=self.pool, logits_to_keep=1)[:, -1]
        lo, hi = min(slots), max(slots) + 1
        if hi - lo == len(slots):
            # consecutive slots: run on a view in slot order, hand the logits back in row order
            order = sorted(range(len(slots)), key=slots.__getitem__)
            state = self._rows_view(lo, hi, 1)
            logits = self.lm(ids[order], state=state, logits_to_keep=1)[:, -1]
            self._sync_view(lo, hi, state)
            return logits[torch.tensor(order, device=logits.device).argsort()]
        state = self.pool.select(slots)
        logits = self.lm(ids, state=state, logits_to_keep=1)[:, -1]
        self.write_rows(slots, state)
        return logits

    def _buckets(self) -> list[int]:
        return [b for b in DEFAULT_BUCKETS if b <= self.pool.batch_size]

    def can_replay(self, slots: list[int]) -> bool:
        """Whether a decode of `slots` goes through a graph replay (a captured bucket covers them)."""
        return self.use_cuda_graphs and bool(slots) and any(b > max(slots) for b in self._buckets())

    def _graph_decode(self, slots: list[int], tokens: torch.Tensor) -> torch.Tensor | None:
        """The decode step by graph replay, or None where no captured bucket covers the slots.
        `_lens` already counts this step's token."""
        buckets = self._buckets()
        bucket = next((b for b in buckets if b > max(slots)), None)
        if bucket is None:
            return None
        # every row of the bucket steps in the replay: the rows holding a request must stay within
        # the K/V capacity (free rows are zeroed by step_rows first)
        needed = max(self._lens.get(s, 0) for s in range(bucket))
        if self._graphs is None or not self._graphs.is_current() or needed > self._graph_capacity():
            self._capture_graphs(needed, buckets)
        decoding = set(slots)
        held = [s for s in self._slot_of.values() if s < bucket and s not in decoding]
        logits = self._graphs.step_rows(slots, tokens, keep=held)
        self.num_graph_steps += 1
        return logits

    def _graph_capacity(self) -> int:
        return min((st.capacity for st in self.pool.layers if isinstance(st, AttentionLayerState)), default=1 << 62)

    def _capture_graphs(self, needed: int, buckets: list[int]) -> None:
        """(Re)capture the decode graphs over the pool, reserving K/V for twice the longest row."""
        capacity = max(MIN_GRAPH_CAPACITY, 1 << (2 * needed - 1).bit_length())
        if self.max_model_len is not None:
            capacity = max(needed, min(capacity, self.max_model_len))
        self._graphs = None  # the old graphs' memory pool goes before the new capture
        graphs = DecodeCudaGraphs(self.lm, self.pool, max_seq_len=capacity, buckets=tuple(buckets))
        graphs.capture(preserve_state=True, rows=list(self._slot_of.values()))  # only rows holding requests
        self._graphs = graphs
        self.num_graph_captures += 1

    def _rows_view(self, lo: int, hi: int, num_new: int) -> LMState:
        """Pool rows lo..hi-1 as views (the forward updates the pool in place); K/V capacity is
        grown first for `num_new` more tokens, because a view cannot grow."""
        needed = int(self.pool.seq_lens[lo:hi].max()) + num_new
        layers = []
        for layer in self.pool.layers:
            if isinstance(layer, AttentionLayerState):
                layer.ensure_capacity(needed)
                layer = AttentionLayerState(layer.k[lo:hi], layer.v[lo:hi])
            elif isinstance(layer, MambaLayerState):
                layer = MambaLayerState(layer.conv[lo:hi], layer.ssm[lo:hi])
            layers.append(layer)
        return LMState(layers, self.pool.seq_lens[lo:hi])

    def _sync_view(self, lo: int, hi: int, view: LMState) -> None:
        """Copy back any tensor the forward replaced instead of updating in place."""
        pairs = [(getattr(mine, name)[lo:hi], t) for mine, theirs in zip(self.pool.layers, view.layers)
                 if mine is not None for name, t in theirs.tensors().items()]
        pairs.append((self.pool.seq_lens[lo:hi], view.seq_lens))
        if any(a.data_ptr() != b.data_ptr() or a.shape != b.shape for a, b in pairs):
            self.write_rows(list(range(lo, hi)), view)

    # ----------------------------------------------------------- state rows
    def write_rows(self, rows: list[int], src: LMState) -> None:
        """Copy the rows of `src` (batch len(rows)) into pool rows `rows`."""
        idx = torch.tensor(rows, dtype=torch.long, device=self.device)
        for mine, theirs in zip(self.pool.layers, src.layers):
            if isinstance(mine, AttentionLayerState):
                mine.ensure_capacity(theirs.capacity)
                cap = theirs.capacity
                mine.k[idx, :, :cap] = theirs.k.to(mine.k.dtype)
                mine.v[idx, :, :cap] = theirs.v.to(mine.v.dtype)
            elif isinstance(mine, MambaLayerState):
                mine.conv[idx] = theirs.conv.to(mine.conv.dtype)
                mine.ssm[idx] = theirs.ssm.to(mine.ssm.dtype)
        self.pool.seq_lens[idx] = src.seq_lens.to(self.pool.seq_lens.device)

    def snapshot_slot(self, slot: int) -> LMState:
        """An independent copy of one row, its K/V trimmed to the row's length."""
        state = self.pool.select([slot])
        n = int(state.seq_lens[0])
        for i, layer in enumerate(state.layers):
            if isinstance(layer, AttentionLayerState):
                state.layers[i] = AttentionLayerState(layer.k[:, :, :n].clone(), layer.v[:, :, :n].clone())
        return state
