"""AsyncEngine: the LLMEngine on a background thread, with one asyncio output queue per request.

The engine thread owns the engine: callers never touch it directly but send commands (add,
abort) through a thread-safe queue, so `step()` and request changes never race. Outputs go
back to each request's asyncio.Queue through its event loop (`call_soon_threadsafe`).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections import Counter
from typing import Any, AsyncIterator, Mapping, Sequence

from nanovl.engine.engine import LLMEngine
from nanovl.engine.outputs import RequestOutput
from nanovl.engine.prefix_cache import PrefixHandle, prefix_request
from nanovl.errors import InvalidRequestError
from nanovl.sampling_params import SamplingParams

log = logging.getLogger("nanovl.engine")
_STOP = object()


class AsyncEngine:
    """Serve many concurrent requests from asyncio code (the HTTP server).

    Args:
        engine: the LLMEngine to drive; it must not be stepped by anyone else.
    """

    def __init__(self, engine: LLMEngine) -> None:
        self.engine = engine
        self._cmds: queue.SimpleQueue = queue.SimpleQueue()
        self._sinks: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> None:
        """Start the engine thread (done on first use; idempotent)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="nanovl-engine", daemon=True)
                self._thread.start()

    def shutdown(self, timeout: float | None = 10.0) -> None:
        """Stop the engine thread; unfinished requests are aborted."""
        if self._thread is not None and self._thread.is_alive():
            self._cmds.put((_STOP,))
            self._thread.join(timeout)

    @property
    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ metrics
    @property
    def queue_depth(self) -> int:
        """Requests waiting for a slot."""
        return self.engine.scheduler.num_waiting

    @property
    def num_running(self) -> int:
        return self.engine.scheduler.num_running

    def stats(self) -> dict[str, int]:
        """Engine counters plus request totals by outcome (added, finished_<reason>, rejected, errors)."""
        return {**self.engine.stats(), **self.counters}

    # ----------------------------------------------------------------- requests
    async def generate(self, prompt, sampling_params: SamplingParams | None = None, *,
                       req_id: str | None = None, prefix: PrefixHandle | None = None,
                       save_state: bool = False) -> AsyncIterator[RequestOutput]:
        """Stream the outputs of one request (deltas per step; the last has finished=True).

        Args:
            prompt: a ProcessedPrompt, raw text or token ids (see LLMEngine.add_request).
        Raises:
            InvalidRequestError, ContextLengthError, QueueFullError before the first output.
            Leaving the iteration early (client disconnect) aborts the request.
        """
        self.start()
        if sampling_params is not None and sampling_params.response_format is not None:
            # a large schema compiles for seconds: on the engine thread that would stall every stream
            await asyncio.to_thread(_compile_response_format, sampling_params.response_format)
        loop = asyncio.get_running_loop()
        sink: asyncio.Queue = asyncio.Queue()
        added: concurrent.futures.Future = concurrent.futures.Future()
        self._cmds.put(("add", prompt, sampling_params, req_id, prefix, save_state, loop, sink, added))
        try:
            req_id = await asyncio.wrap_future(added)
        except asyncio.CancelledError:
            # the caller left while the engine thread was adding it: abort it once it has an id
            added.add_done_callback(self._abort_added)
            raise
        finished = False
        try:
            while not finished:
                out = await sink.get()
                if isinstance(out, BaseException):
                    raise out
                finished = out.finished
                yield out
        finally:
            if not finished:
                self.abort(req_id)

    async def chat(self, messages: Sequence[Mapping[str, Any]], sampling_params: SamplingParams | None = None,
                   *, chat_template_kwargs: Mapping[str, Any] | None = None, tools: Sequence[Mapping] | None = None,
                   req_id: str | None = None, prefix: PrefixHandle | None = None) -> AsyncIterator[RequestOutput]:
        """Process messages off the event loop (media decoding is slow), then stream like `generate`."""
        params = sampling_params or SamplingParams()
        processed = await self.process_chat(messages, params, chat_template_kwargs=chat_template_kwargs, tools=tools)
        async for out in self.generate(processed, params, req_id=req_id, prefix=prefix):
            yield out

    async def process_chat(self, messages, params: SamplingParams | None = None, *,
                           chat_template_kwargs=None, tools=None, add_generation_prompt: bool = True):
        """The processor on a worker thread; returns a ProcessedPrompt."""
        thinking = params.enable_thinking if params is not None else None
        return await asyncio.to_thread(self.engine.processor.process_chat, messages, enable_thinking=thinking,
                                       tools=tools, chat_template_kwargs=chat_template_kwargs,
                                       add_generation_prompt=add_generation_prompt)

    async def save_prefix(self, messages_prefix, *, chat_template_kwargs=None, tools=None) -> PrefixHandle:
        """Run a conversation prefix once and return its saved state (see LLM.save_prefix)."""
        processed = await self.process_chat(messages_prefix, chat_template_kwargs=chat_template_kwargs,
                                            tools=tools, add_generation_prompt=False)
        last = None
        async for last in self.generate(prefix_request(processed), SamplingParams(max_tokens=1, temperature=0),
                                        save_state=True):
            pass
        handle = self.engine.take_saved_prefix(last.req_id) if last is not None else None
        if handle is None:
            raise RuntimeError("the prefix request ended before its state was saved")
        return handle

    def abort(self, req_id: str) -> None:
        """Cancel a request (thread-safe; takes effect before the next step)."""
        self._cmds.put(("abort", req_id))

    def _abort_added(self, added: concurrent.futures.Future) -> None:
        if not added.cancelled() and added.exception() is None:
            self.abort(added.result())

    # ------------------------------------------------------------ engine thread
    def _loop(self) -> None:
        while True:
            busy = self.engine.has_unfinished_requests()
            cmds = []
            try:
                # idle: sleep until a command arrives; busy: only drain what is there
                cmds.append(self._cmds.get(block=not busy))
                while True:
                    cmds.append(self._cmds.get_nowait())
            except queue.Empty:
                pass
            for cmd in cmds:
                if cmd[0] is _STOP:
                    self._abort_all()
                    return
                self._apply(cmd)
            if not self.engine.has_unfinished_requests():
                continue
            try:
                outputs = self.engine.step()
            except Exception as err:  # noqa: BLE001 - a failed step must not kill the server
                log.exception("engine step failed; aborting all requests")
                self.counters["errors"] += 1
                self._fail_all(err)
                continue
            for out in outputs:
                self._deliver(out)

    def _apply(self, cmd: tuple) -> None:
        if cmd[0] == "abort":
            if self.engine.abort(cmd[1]):
                self.counters["aborted"] += 1
            return
        _, prompt, params, req_id, prefix, save_state, loop, sink, added = cmd
        if not added.set_running_or_notify_cancel():
            return  # the caller was cancelled before the request got in
        try:
            req_id = self.engine.add_request(prompt, params, req_id=req_id, prefix=prefix, save_state=save_state)
        except Exception as err:  # noqa: BLE001 - handed to the caller, who raises it
            self.counters["rejected"] += 1
            added.set_exception(err)
            return
        self.counters["added"] += 1
        self._sinks[req_id] = (loop, sink)
        added.set_result(req_id)

    def _deliver(self, out: RequestOutput | BaseException, req_id: str | None = None) -> None:
        req_id = req_id or out.req_id
        entry = self._sinks.get(req_id)
        if isinstance(out, RequestOutput) and out.finished:
            self.counters[f"finished_{out.finish_reason}"] += 1
            self._sinks.pop(req_id, None)
        if entry is not None:
            loop, sink = entry
            try:
                loop.call_soon_threadsafe(sink.put_nowait, out)
            except RuntimeError:
                # the caller's event loop is closed: nobody is listening any more
                self.engine.abort(req_id)

    def _abort_all(self) -> None:
        for req_id in list(self._sinks):
            self.engine.abort(req_id)
        for out in self.engine.step() if self.engine.has_unfinished_requests() else []:
            self._deliver(out)

    def _fail_all(self, err: Exception) -> None:
        for req_id in list(self._sinks):
            self.engine.abort(req_id)
            self._deliver(err, req_id)
            self._sinks.pop(req_id, None)
        try:
            self.engine.step()
        except Exception:  # noqa: BLE001
            log.exception("engine could not recover after a failed step")


def _compile_response_format(response_format) -> None:
    """Compile the request's grammar into compile_grammar's cache (the engine thread's own call then
    finds it there); an invalid schema is refused here, as the engine would refuse it."""
    try:
        from nanovl.structured.grammar import compile_grammar
    except ImportError:
        return  # no llguidance here: the engine's own call reports it, as before
    try:
        compile_grammar(response_format)
    except ValueError as err:
        raise InvalidRequestError(f"response_format: {err}") from err
