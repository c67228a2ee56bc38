"""LLM: the offline Python API — processor + engine + detokenizer behind generate() and chat().

    llm = LLM("path/to/checkpoint", max_num_seqs=8)
    out = llm.chat([{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "cat.png"}},
                                                 {"type": "text", "text": "What is this?"}]}])
    print(out[0].reasoning_content, out[0].text)
"""
from __future__ import annotations

import numbers
import threading
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence, Union

from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.engine.outputs import RequestOutput
from nanovl.engine.prefix_cache import PrefixHandle, prefix_request
from nanovl.errors import InvalidRequestError, QueueFullError
from nanovl.processor import ProcessedPrompt
from nanovl.sampling_params import SamplingParams

BUNDLED_MODEL = Path(__file__).resolve().parent / "assets" / "tiny"

Messages = Sequence[Mapping[str, Any]]
ParamsArg = Union[SamplingParams, Sequence[SamplingParams], None]


class LLM:
    """Offline generation over a checkpoint.

    Args:
        model: checkpoint folder or hub id; None uses the bundled tiny model (nanovl/assets/tiny).
        **kwargs: EngineConfig fields (max_num_seqs, max_model_len, dtype, device, ...);
            other names raise ValueError.
        engine: an LLMEngine to wrap instead of building one (tests, shared models).
    """

    def __init__(self, model: str | Path | None = None, *, engine: LLMEngine | None = None, **kwargs: Any) -> None:
        if engine is None:
            if model is None:
                if not (BUNDLED_MODEL / "config.json").is_file():
                    raise ValueError(f"no model given and the bundled tiny model is missing at {BUNDLED_MODEL}; "
                                     "pass a checkpoint folder or hub id")
                model = BUNDLED_MODEL
            engine = LLMEngine(EngineConfig.from_kwargs(model=str(model), **kwargs))
        self.engine = engine
        # outputs of the requests someone here waits for; every engine step feeds all of them,
        # so an open stream and a generate() call can share the engine without losing outputs
        self._outbox: dict[str, deque[RequestOutput]] = {}
        # the engine is single-threaded: threads sharing this LLM take turns at each add, abort and
        # step (media preprocessing runs outside it); whoever steps delivers every thread's outputs
        self._lock = threading.RLock()

    @property
    def tokenizer(self):
        return self.engine.tokenizer

    @property
    def processor(self):
        return self.engine.processor

    # ----------------------------------------------------------------- generate
    def generate(self, prompts: str | Sequence[str] | Sequence[Sequence[int]], sampling_params: ParamsArg = None,
                 *, prefix: PrefixHandle | None = None) -> list[RequestOutput]:
        """Complete raw prompts (no chat template): strings or token-id lists, one output each, in order.

        Any number of prompts: they enter the engine as its bounded waiting queue makes room.
        """
        if isinstance(prompts, str) or (_is_sequence(prompts) and prompts and _is_token_id(prompts[0])):
            prompts = [prompts]
        if not _is_sequence(prompts):
            raise InvalidRequestError(f"prompts must be a string, token ids or a list of them, "
                                      f"not {type(prompts).__name__}")
        return self._run_all([_plain_ids(p) for p in prompts], sampling_params, prefix)

    def generate_as_completed(self, requests: Iterable[tuple[Any, SamplingParams]], *,
                              prefix: PrefixHandle | None = None, max_in_flight: int | None = None
                              ) -> Iterator[tuple[int, RequestOutput | Exception]]:
        """Run (prompt, SamplingParams) pairs and yield (index, final output) in the order they finish.

        A prompt is a string, token ids, or a ProcessedPrompt (`llm.processor.process_chat(...)`).
        `requests` is read lazily: at most `max_in_flight` (default 2 x max_num_seqs: every state
        slot busy and as many ready to start) are in the engine at once, so it may be a generator
        of any length (a whole batch file) in bounded memory; one thread steps the engine for all.
        A request the engine refuses (a prompt over the context, a bad schema) comes back as its
        exception in place of an output, and the others go on. Closing the iterator aborts what is
        still running.
        """
        limit = max_in_flight or 2 * self.engine.config.max_num_seqs
        pending: dict[str, int] = {}
        source, held, exhausted = enumerate(requests), None, False
        try:
            while True:
                while not exhausted and len(pending) < limit:
                    held = held or next(source, None)
                    if held is None:
                        exhausted = True
                        break
                    index, (prompt, params) = held
                    try:
                        with self._lock:
                            req_id = self.engine.add_request(_plain_ids(prompt), params,
                                                             prefix=_checked_prefix(prefix))
                            self._outbox[req_id] = deque(maxlen=1)
                    except QueueFullError:
                        if not self.engine.has_unfinished_requests():
                            raise
                        break  # held until a step frees a place
                    except Exception as exc:  # noqa: BLE001 - this request alone fails
                        yield index, exc
                    else:
                        pending[req_id] = index
                    held = None
                if not pending and held is None:
                    return
                self._step()
                for req_id in [r for r in pending if self._outbox[r] and self._outbox[r][-1].finished]:
                    with self._lock:
                        out = self._outbox.pop(req_id)[-1]
                    yield pending.pop(req_id), out
        finally:
            self._abort_all(list(pending))

    def chat(self, messages: Messages | Sequence[Messages], sampling_params: ParamsArg = None, *,
             chat_template_kwargs: Mapping[str, Any] | None = None, tools: Sequence[Mapping] | None = None,
             prefix: PrefixHandle | None = None) -> list[RequestOutput]:
        """Answer one conversation or a list of them (OpenAI-style messages with text/image/video parts).

        Returns:
            one final RequestOutput per conversation: `text` is the answer, `reasoning_content`
            the thinking (None when thinking is off).
        """
        if _is_sequence(messages) and not messages:
            return []
        convs = [messages] if _is_conversation(messages) else list(messages)
        params = _params_list(sampling_params, len(convs))
        processed = [self._process(c, p, chat_template_kwargs, tools) for c, p in zip(convs, params)]
        return self._run_all(processed, params, prefix)

    def stream_chat(self, messages: Messages, sampling_params: SamplingParams | None = None, *,
                    chat_template_kwargs: Mapping[str, Any] | None = None, tools: Sequence[Mapping] | None = None,
                    prefix: PrefixHandle | None = None) -> Iterator[RequestOutput]:
        """Yield a RequestOutput per step with the new text in `delta` / `delta_reasoning`; the last has finished=True.

        Closing the iterator early aborts the request.
        """
        [params] = _params_list(sampling_params, 1)
        return self._stream(self._process(messages, params, chat_template_kwargs, tools), params, prefix)

    def stream(self, prompt: str | Sequence[int], sampling_params: SamplingParams | None = None, *,
               prefix: PrefixHandle | None = None) -> Iterator[RequestOutput]:
        """`stream_chat` for a raw prompt (a string or token ids, no chat template)."""
        return self._stream(_plain_ids(prompt), _params_list(sampling_params, 1)[0], prefix)

    def _stream(self, prompt, params: SamplingParams, prefix: PrefixHandle | None) -> Iterator[RequestOutput]:
        # the request joins the engine at the first next(): a stream made and dropped unread leaves nothing behind
        with self._lock:
            req_id = self.engine.add_request(prompt, params, prefix=_checked_prefix(prefix))
            self._outbox[req_id] = deque()
        done = False
        try:
            while not done:
                out = self._next(req_id)
                done = out.finished
                yield out
        finally:
            with self._lock:
                self._outbox.pop(req_id, None)
                if not done:
                    self.engine.abort(req_id)
                    self._step()

    # ----------------------------------------------------------------- prefixes
    def save_prefix(self, messages_prefix: Messages, *, chat_template_kwargs: Mapping[str, Any] | None = None,
                    tools: Sequence[Mapping] | None = None) -> PrefixHandle:
        """Run a conversation prefix (e.g. a long video and the question scaffold) once and keep its state.

        Later `chat(..., prefix=handle)` calls whose prompt starts with the same tokens and media
        restore the state and compute only the rest (`RequestOutput.num_cached_tokens` says how many
        prompt tokens were skipped).
        """
        processed = self.processor.process_chat(messages_prefix, add_generation_prompt=False, tools=tools,
                                                chat_template_kwargs=chat_template_kwargs)
        with self._lock:
            req_id = self.engine.add_request(prefix_request(processed), SamplingParams(max_tokens=1, temperature=0),
                                             save_state=True)
            self._outbox[req_id] = deque(maxlen=1)
        self._wait([req_id])
        with self._lock:
            handle = self.engine.take_saved_prefix(req_id)
        if handle is None:
            raise RuntimeError("the prefix request ended before its state was saved")
        return handle

    # ------------------------------------------------------------------ helpers
    def count_tokens(self, messages: Messages, *, chat_template_kwargs: Mapping[str, Any] | None = None,
                     tools: Sequence[Mapping] | None = None) -> int:
        """Prompt tokens of a conversation, media included (exact, EVS too)."""
        return len(self._process(messages, SamplingParams(), chat_template_kwargs, tools).prompt_token_ids)

    def image_token_count(self, width: int, height: int, max_num_tiles: int | None = None) -> int:
        """Prompt tokens one image of this size costs."""
        return self.processor.image_token_count(width, height, max_num_tiles)

    def video_token_count(self, num_frames: int, pruning_rate: float | None = None) -> int:
        """`<image>` tokens of a video with `num_frames` sampled frames (frame captions not included)."""
        return self.processor.video_embed_count(num_frames, pruning_rate)

    def _process(self, messages: Messages, params: SamplingParams, kwargs, tools) -> ProcessedPrompt:
        return self.processor.process_chat(messages, enable_thinking=params.enable_thinking, tools=tools,
                                           chat_template_kwargs=kwargs)

    def _run_all(self, prompts: list, sampling_params: ParamsArg, prefix: PrefixHandle | None) -> list[RequestOutput]:
        params = _params_list(sampling_params, len(prompts))
        req_ids: list[str] = []
        try:
            for prompt, p in zip(prompts, params):
                req_ids.append(self._add_when_room(prompt, p, prefix))
            finals = self._wait(req_ids)
        except BaseException:
            self._abort_all(req_ids)
            raise
        return [finals[r] for r in req_ids]

    def _add_when_room(self, prompt, params: SamplingParams, prefix: PrefixHandle | None) -> str:
        """Offline batches may exceed the bounded queue: step the engine until a place frees up."""
        prefix = _checked_prefix(prefix)
        while True:
            with self._lock:
                try:
                    req_id = self.engine.add_request(prompt, params, prefix=prefix)
                except QueueFullError:
                    if not self.engine.has_unfinished_requests():
                        raise
                    self._step()
                    continue
                self._outbox[req_id] = deque(maxlen=1)
                return req_id

    def _wait(self, req_ids: list[str]) -> dict[str, RequestOutput]:
        # a waiter wants only the final output (each carries the whole text so far), so its box
        # keeps just the newest one; streams keep every output for their deltas
        with self._lock:
            for r in req_ids:
                self._outbox.setdefault(r, deque(maxlen=1))
        finals: dict[str, RequestOutput] = {}
        for r in req_ids:
            while r not in finals:
                out = self._next(r)
                if out.finished:
                    finals[r] = out
                    with self._lock:
                        self._outbox.pop(r, None)
        return finals

    def _next(self, req_id: str) -> RequestOutput:
        """The next output of `req_id`, stepping the engine until there is one."""
        box = self._outbox[req_id]
        while True:
            with self._lock:  # another thread's step may fill this box meanwhile
                if box:
                    return box.popleft()
                if not self.engine.has_unfinished_requests():
                    raise RuntimeError(f"request {req_id!r} vanished from the engine")
                self._step()

    def _step(self) -> None:
        """One engine step; each output goes to its request's outbox (untracked ones are dropped)."""
        with self._lock:
            for out in self.engine.step():
                box = self._outbox.get(out.req_id)
                if box is not None:
                    box.append(out)

    def _abort_all(self, req_ids: list[str]) -> None:
        """Cancel what is still running of `req_ids` (an error or interrupt left them behind)."""
        with self._lock:
            for r in req_ids:
                self._outbox.pop(r, None)
                self.engine.abort(r)
            try:
                if self.engine.has_unfinished_requests():
                    self._step()
            except Exception:  # noqa: BLE001 - the error being raised already says what went wrong
                pass


def _is_sequence(value: Any) -> bool:
    # a list or tuple; a string is a prompt, and an array is neither (its truth value is ambiguous)
    return isinstance(value, (list, tuple))


def _is_token_id(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _plain_ids(prompt: Any) -> Any:
    """Token ids of any integer type (numpy's too) as Python ints; other prompts as they are."""
    if _is_sequence(prompt) and prompt and all(_is_token_id(t) for t in prompt):
        return [int(t) for t in prompt]
    return prompt


def _is_conversation(messages: Any) -> bool:
    return _is_sequence(messages) and (not messages or isinstance(messages[0], Mapping))


def _params_list(params: ParamsArg, n: int) -> list[SamplingParams]:
    if params is None or isinstance(params, SamplingParams):
        return [params or SamplingParams()] * n
    if not _is_sequence(params) or not all(isinstance(p, SamplingParams) for p in params):
        raise InvalidRequestError(f"sampling_params must be a SamplingParams or a list of them, "
                                  f"not {type(params).__name__}")
    if len(params) != n:
        raise InvalidRequestError(f"got {len(params)} SamplingParams for {n} prompts")
    return list(params)


def _checked_prefix(prefix: Any) -> PrefixHandle | None:
    if prefix is not None and not isinstance(prefix, PrefixHandle):
        raise InvalidRequestError(f"prefix must be a PrefixHandle from save_prefix, not {type(prefix).__name__}")
    return prefix
