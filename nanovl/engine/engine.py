"""LLMEngine.step(): schedule -> encode new media -> forward -> grammar masks -> sample -> update.

With CUDA graphs, a decode-only step launches the forward of the next decode step on its drawn ids
before doing its host work; the next `step()` picks it up (engine/lookahead.py).

Also `EngineConfig`, the one flat dataclass of runtime knobs (`LLM(**kwargs)` and the CLI
map onto its fields). Per-request output state (detokenizer, reasoning split, grammar,
thinking budget, RNG) lives in `nanovl.engine.request_state.RequestState`.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from nanovl.engine.lookahead import InFlightDecode
from nanovl.engine.model_runner import ModelRunner
from nanovl.engine.outputs import ModelRunnerOutput, RequestOutput, SchedulerOutput, TokenLogprob
from nanovl.engine.prefix_cache import PrefixHandle, make_handle, match_prefix
from nanovl.engine.request import Request, RequestStatus
from nanovl.engine.request_state import RequestState
from nanovl.engine.sampler import Sampler, SamplingRow
from nanovl.engine.scheduler import Scheduler
from nanovl.engine.transfers import copy_to_host_async
from nanovl.devices import check_device
from nanovl.errors import InvalidRequestError
from nanovl.processor import ProcessedPrompt, Processor
from nanovl.sampling_params import SamplingParams

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class EngineConfig:
    """Runtime knobs (model shape comes from the checkpoint's config.json).

    model: checkpoint folder or hub id; tokenizer: its folder (default: the model folder).
    dtype: "auto" (bfloat16 on CUDA, float32 on CPU) or a name in DTYPES; device: "auto", "cpu", "cuda[:N]".
    max_num_seqs: state slots = requests decoded together. max_model_len: prompt + output
    tokens (None: the model's max_position_embeddings). max_prefill_chunk: prompt tokens run
    per step (long prompts are prefilled in chunks of this size). max_waiting: queued
    requests before QueueFullError. max_num_tiles / video_pruning_rate: None takes the model
    config's value. video_fps / video_max_frames: frame sampling defaults. cuda_graphs: on a
    GPU, decode steps replay captured CUDA graphs (engine/model_runner.py); a CPU ignores it.
    decode_lookahead: with the graphs, launch the next decode step before this one's host work
    (engine/lookahead.py).
    """

    model: str | None = None
    tokenizer: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    max_num_seqs: int = 8
    max_model_len: int | None = None
    max_prefill_chunk: int = 2048
    max_waiting: int = 1024
    max_num_tiles: int | None = None
    video_fps: float = 2.0
    video_max_frames: int = 128
    video_pruning_rate: float | None = None
    max_image_pixels: int = 64_000_000
    cuda_graphs: bool = True
    decode_lookahead: bool = True

    def __post_init__(self) -> None:
        for name in ("max_num_seqs", "max_prefill_chunk", "max_waiting", "video_max_frames", "max_image_pixels"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"EngineConfig.{name} must be an int >= 1, got {v!r}")
        for name in ("max_model_len", "max_num_tiles"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"EngineConfig.{name} must be None or an int >= 1, got {v!r}")
        for name in ("cuda_graphs", "decode_lookahead"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"EngineConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"EngineConfig.dtype must be 'auto' or one of {sorted(DTYPES)}, got {self.dtype!r}")
        if not self.video_fps > 0:
            raise ValueError(f"EngineConfig.video_fps must be > 0, got {self.video_fps!r}")
        if self.video_pruning_rate is not None and not 0.0 <= self.video_pruning_rate < 1.0:
            raise ValueError(f"EngineConfig.video_pruning_rate must be in [0, 1), got {self.video_pruning_rate!r}")
        try:
            check_device(self.device)
        except ValueError as err:
            raise ValueError(f"EngineConfig.{err}") from None

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> "EngineConfig":
        """Build from keyword arguments; names that are not fields raise a ValueError listing them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(kwargs) - names)
        if unknown:
            raise ValueError(f"unknown engine option(s) {unknown}; valid: {sorted(names)}")
        return cls(**kwargs)

    def torch_device(self) -> torch.device:
        return check_device(self.device)

    def torch_dtype(self) -> torch.dtype:
        if self.dtype == "auto":
            return torch.bfloat16 if self.torch_device().type == "cuda" else torch.float32
        return DTYPES[self.dtype]


class LLMEngine:
    """Synchronous engine: `add_request()` any time, `step()` until `has_unfinished_requests()` is False.

    Args:
        config: EngineConfig (config.model names the checkpoint unless `model` is given).
        model / tokenizer: already-loaded objects (tests, apps sharing one model).
    """

    def __init__(self, config: EngineConfig, *, model: torch.nn.Module | None = None, tokenizer=None) -> None:
        from nanovl.tokenizer import Tokenizer

        self.config = config
        if model is None:
            if config.model is None:
                raise ValueError("EngineConfig.model is not set and no model was given")
            from nanovl.model.loader import load_model

            model = load_model(config.model, dtype=config.torch_dtype(), device=config.torch_device())
        if tokenizer is None:
            from nanovl.model.loader import resolve_checkpoint

            tok_src = config.tokenizer or config.model
            if tok_src is None:
                raise ValueError("no tokenizer: set EngineConfig.tokenizer (or EngineConfig.model)")
            # a hub id names a cached snapshot folder, the same one load_model read the weights from
            tok_dir = resolve_checkpoint(tok_src)
            if not (tok_dir / "tokenizer.json").is_file():
                raise ValueError(f"no tokenizer.json in {str(tok_dir)!r}; set EngineConfig.tokenizer")
            tokenizer = Tokenizer.from_dir(tok_dir)
        self.model, self.tokenizer = model, tokenizer
        self.model_config = model.config
        text_cfg = getattr(self.model_config, "text", self.model_config)
        self.max_model_len = config.max_model_len or text_cfg.max_position_embeddings
        self.eos_token_ids = frozenset(tokenizer.eos_token_ids) | frozenset(text_cfg.eos_token_ids)
        self.processor = Processor(tokenizer, self.model_config, max_num_tiles=config.max_num_tiles,
                                   video_fps=config.video_fps, video_max_frames=config.video_max_frames,
                                   video_pruning_rate=config.video_pruning_rate,
                                   max_image_pixels=config.max_image_pixels)
        self.scheduler = Scheduler.from_config(config, self.max_model_len)
        self.runner = ModelRunner(model, num_slots=config.max_num_seqs, cuda_graphs=config.cuda_graphs,
                                  max_model_len=self.max_model_len)
        self.sampler = Sampler()
        self._states: dict[str, RequestState] = {}
        self._pending: list[RequestOutput] = []
        self._saved: dict[str, PrefixHandle] = {}
        self._ids = itertools.count()
        self._ll_tokenizer = None
        self._ahead: InFlightDecode | None = None
        self.num_steps = 0
        self.num_lookahead_steps = 0  # decode steps launched before the host had the previous tokens
        self.num_generated_tokens = 0

    # ----------------------------------------------------------------- requests
    @property
    def vocab_size(self) -> int:
        return self.runner.vocab_size

    def has_unfinished_requests(self) -> bool:
        return self.scheduler.has_unfinished_requests() or bool(self._pending)

    def add_request(self, prompt: ProcessedPrompt | str | Sequence[int], params: SamplingParams | None = None,
                    *, req_id: str | None = None, prefix: PrefixHandle | None = None,
                    save_state: bool = False) -> str:
        """Queue one request; returns its req_id.

        Args:
            prompt: processor output, raw text (tokenized as is) or token ids.
            prefix: start from this saved state (the prompt must begin with its tokens).
            save_state: keep the state after the prompt for `take_saved_prefix(req_id)`.
        Raises:
            InvalidRequestError, ContextLengthError, QueueFullError.
        """
        params = params or SamplingParams()
        processed = self._as_processed(prompt)
        if prefix is not None:
            match_prefix(prefix, processed)
        req_id = req_id if req_id is not None else f"req-{next(self._ids)}"
        thinking = bool(processed.enable_thinking)
        req = Request(req_id, list(processed.prompt_token_ids), max_tokens=params.max_tokens,
                      eos_token_ids=self.eos_token_ids, stop_token_ids=frozenset(params.stop_token_ids),
                      ignore_eos=params.ignore_eos, mm_input=processed.mm_input, prefix=prefix)
        # a raw prompt (no chat template) carries no thinking switch: its completion is kept as generated
        state = RequestState.create(req, params, self.tokenizer, thinking=thinking,
                                    grammar_tokenizer=self._grammar_tokenizer,
                                    raw=processed.enable_thinking is None)
        state.save_state, state.processed = save_state, processed
        self.scheduler.add_request(req)
        self._states[req_id] = state
        return req_id

    def abort(self, req_id: str) -> bool:
        """Cancel `req_id` now (its slot is freed); the next step() reports it with finish_reason "abort"."""
        req = self.scheduler.requests.get(req_id)
        if req is None or not self.scheduler.abort(req_id):
            return False
        self._pending.append(self._finish_output(req))
        return True

    def take_saved_prefix(self, req_id: str) -> PrefixHandle | None:
        """The state saved by a `save_state=True` request, once it finished (handed over once)."""
        return self._saved.pop(req_id, None)

    def _as_processed(self, prompt) -> ProcessedPrompt:
        if isinstance(prompt, ProcessedPrompt):
            out = prompt
        elif isinstance(prompt, str):
            out = self.processor.process_text(prompt)
        elif isinstance(prompt, Sequence) and all(isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            out = ProcessedPrompt(list(prompt))
        else:
            raise InvalidRequestError("a prompt must be a string, a list of token ids or a ProcessedPrompt")
        bad = [t for t in out.prompt_token_ids if not 0 <= t < self.vocab_size]
        if not out.prompt_token_ids or bad:
            raise InvalidRequestError(f"prompt token ids must be non-empty and in [0, {self.vocab_size}); "
                                      f"got {bad[:5] if bad else 'an empty prompt'}")
        return out

    def _grammar_tokenizer(self):
        if self._ll_tokenizer is None:
            from nanovl.structured.grammar import make_ll_tokenizer

            self._ll_tokenizer = make_ll_tokenizer(self.tokenizer, vocab_size=self.vocab_size)
        return self._ll_tokenizer

    # --------------------------------------------------------------------- step
    def step(self) -> list[RequestOutput]:
        """Run one scheduling step; returns an output for every request that progressed or ended."""
        # streams, events and graph captures take the current CUDA device: make it the model's
        # (a model on cuda:1 in a process whose current device is cuda:0)
        dev = self.runner.device
        with torch.cuda.device(dev) if dev.type == "cuda" else contextlib.nullcontext():
            return self._step()

    def _step(self) -> list[RequestOutput]:
        outputs, self._pending = self._pending, []
        ahead, self._ahead = self._live_ahead(), None  # taken first: a failing step leaves none behind
        sched = self.scheduler.schedule(admit=ahead is None)
        for req_id in sched.new_req_ids:
            self._start(self.scheduler.requests[req_id], sched)
        if sched.is_empty:
            return outputs
        if ahead is not None:
            run_out = ModelRunnerOutput(sched.sampling_req_ids, ahead.logits_for(sched))
        else:
            run_out = self.runner.execute(sched)
        forced, rows, idx = self._sampling_rows(run_out.req_ids)
        if not forced and self._may_look_ahead(sched):
            # the drawn ids stay on the device and feed the next replay at once; their copy to the
            # host is queued before that replay, so reading it waits for this step only
            ids = self.sampler.draw(run_out.logits, rows)
            host_ids = copy_to_host_async(ids)
            next_logits = self.runner.decode(sched.decode_slots, ids).float()
            self._ahead = InFlightDecode(list(sched.decode_req_ids), next_logits)
            self.num_lookahead_steps += 1
            sampled, logprobs = self._accept_drawn(run_out.req_ids, host_ids())
        else:
            sampled, logprobs = self._sample(run_out.req_ids, run_out.logits, forced, rows, idx)
        self._save_states(sched)
        touched = self.scheduler.update_from_output(sched, sampled)
        self.num_steps += 1
        for req in touched:
            new = sampled.get(req.req_id, [])
            self.num_generated_tokens += len(new)
            outputs.append(self._output(req, logprobs.get(req.req_id)))
        return outputs

    def _start(self, req: Request, sched: SchedulerOutput) -> None:
        """Set up the slot and media of a newly admitted request; fix its chunks' ids."""
        final = self.runner.start_request(req.req_id, req.slot, req.prompt_token_ids,
                                          mm_input=req.mm_input, prefix=req.prefix)
        if final != req.prompt_token_ids:
            req.prompt_token_ids = final
            for chunk in sched.prefills:
                if chunk.req_id == req.req_id:
                    chunk.token_ids = req.token_slice(chunk.start, len(chunk.token_ids))

    def _live_ahead(self) -> InFlightDecode | None:
        """The step launched ahead, unless every request it ran for has ended since."""
        ahead = self._ahead
        if ahead is None or not any(r in self.scheduler.requests for r in ahead.req_ids):
            return None
        return ahead

    def _may_look_ahead(self, sched: SchedulerOutput) -> bool:
        """Launch the next decode now? Only a decode-only step on the graphs, unless a waiting request
        could take a free slot next step (the step in flight would hold it back), no row asking for
        logprobs (reading them back would wait for the step launched ahead), and no row ending by
        length here (its next step would be known waste, and its slot goes to the queue). With every
        slot taken, a queue does not stop it: only a request that ends on a stop token frees a slot
        unforeseen, and its successor then starts one step later. The caller has checked that no
        row's tokens are forced this step (a forced row prefills next, not decodes)."""
        sch = self.scheduler
        if not (self.config.decode_lookahead and self.runner.use_cuda_graphs and sched.decode_req_ids) \
                or sched.prefills or (sch.waiting and sch.cache.num_free_slots) \
                or not self.runner.can_replay(sched.decode_slots):
            return False
        for req_id in sched.decode_req_ids:
            req = self.scheduler.requests[req_id]
            if self._states[req_id].params.logprobs is not None or req.num_output_tokens + 1 >= req.max_tokens \
                    or req.num_tokens + 1 >= self.max_model_len:
                return False
        return True

    def _accept_drawn(self, req_ids: list[str], ids: list[int]):
        """What `_sample` returns when every row drew one token and none wants logprobs."""
        for req_id, tok in zip(req_ids, ids):
            self._states[req_id].accept([tok])
        return {r: [t] for r, t in zip(req_ids, ids)}, {r: [None] for r in req_ids}

    def _sampling_rows(self, req_ids: list[str]):
        """(ids the thinking budget forces, by request; a SamplingRow for every other row, with its
        grammar mask; those rows' positions in `req_ids`)."""
        forced: dict[str, list[int]] = {}
        rows, idx = [], []
        for i, req_id in enumerate(req_ids):
            req, st = self.scheduler.requests[req_id], self._states[req_id]
            tokens = st.forced_tokens(req.output_token_ids)
            if tokens:
                forced[req_id] = tokens
                continue
            rows.append(SamplingRow(st.params, st.next_seed(), req.prompt_token_ids, req.output_token_ids,
                                    st.allowed_mask(self.vocab_size)))
            idx.append(i)
        return forced, rows, idx

    def _sample(self, req_ids: list[str], logits: torch.Tensor, forced: dict[str, list[int]],
                rows: list[SamplingRow], idx: list[int]):
        """Forced (thinking budget) tokens, and the draw for every other row (see `_sampling_rows`)."""
        sampled: dict[str, list[int]] = dict(forced)
        logprobs: dict[str, list[TokenLogprob | None]] = {r: [TokenLogprob(t, 0.0) for t in f]
                                                           for r, f in forced.items()}
        if rows:
            out = self.sampler(logits if len(idx) == len(req_ids) else logits[idx], rows)
            for i, tok, lp in zip(idx, out.token_ids, out.logprobs):
                sampled[req_ids[i]] = [tok]
                logprobs[req_ids[i]] = [lp]
        for req_id, toks in sampled.items():
            self._states[req_id].accept(toks, forced=req_id in forced)
        return sampled, logprobs

    def _save_states(self, sched: SchedulerOutput) -> None:
        for chunk in sched.prefills:
            st = self._states.get(chunk.req_id)
            if chunk.samples and st is not None and st.save_state:
                req = self.scheduler.requests[chunk.req_id]
                self._saved[chunk.req_id] = make_handle(st.processed.prompt_token_ids, req.prompt_token_ids,
                                                        st.processed, self.runner.snapshot_slot(chunk.slot))

    def _output(self, req: Request, logprobs: list[TokenLogprob | None] | None) -> RequestOutput:
        st = self._states[req.req_id]
        st.absorb(req, logprobs)
        if st.should_stop and not req.is_finished:
            self.scheduler.finish_request(req, RequestStatus.FINISHED_STOPPED)
        if req.is_finished:
            return self._finish_output(req)
        return st.output(req)

    def _finish_output(self, req: Request) -> RequestOutput:
        st = self._states.pop(req.req_id)
        self.runner.release(req.req_id)
        st.finish()
        return st.output(req)

    # ------------------------------------------------------------------ metrics
    def stats(self) -> dict[str, int]:
        """Queue and work counters (for /metrics)."""
        return {"num_waiting": self.scheduler.num_waiting, "num_running": self.scheduler.num_running,
                "num_steps": self.num_steps, "num_generated_tokens": self.num_generated_tokens,
                "num_prefill_tokens": self.runner.num_prefill_tokens,
                "num_graph_decode_steps": self.runner.num_graph_steps,
                "num_lookahead_steps": self.num_lookahead_steps}
