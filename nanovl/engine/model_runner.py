"""ModelRunner: owns the state pool and runs the model for one SchedulerOutput (keep minimal).

The pool is one LMState with a row per slot. A prefill chunk runs on its row alone (B=1);
all decoding rows run as one batched forward (`decode`). When the decode batch is the whole
pool in slot order the pool is updated in place, with fixed shapes — the case a CUDA-graph
capture per batch-size bucket starts from. Rows on consecutive slots (every prefill, most
decode batches) run on views of the pool, also in place, so no step copies a row's K/V;
only a scattered decode batch is gathered and scattered back.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from nanovl.engine.outputs import ModelRunnerOutput, SchedulerOutput
from nanovl.model.state import AttentionLayerState, LMState, MambaLayerState


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
    """

    def __init__(self, model: torch.nn.Module, *, num_slots: int) -> None:
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
        start = 0
        if prefix is None:
            self.write_rows([slot], self.lm.new_state(1, device=self.device))
        else:
            self.write_rows([slot], prefix.state)
            start = prefix.num_tokens
        ids = list(prompt_token_ids)
        if mm_input is not None and self.is_vl:
            ids = self._encode_media(req_id, ids, mm_input, skip_before=start)
        if prefix is not None:
            ids[:start] = prefix.token_ids[:start]
        return ids

    def release(self, req_id: str) -> None:
        """Forget a finished request's media embeddings."""
        self._media.pop(req_id, None)

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
            rows.extend(self.decode(sched.decode_slots, sched.decode_token_ids).unbind(0))
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
        self.num_prefill_tokens += len(token_ids)
        return logits[0, -1]

    def decode(self, slots: list[int], token_ids: list[int]) -> torch.Tensor:
        """One token for each of `slots` in one forward. Returns logits [len(slots), V]."""
        ids = torch.tensor(token_ids, dtype=torch.long, device=self.device).unsqueeze(1)  # [B, 1]
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
