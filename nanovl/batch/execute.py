"""Executor: runs WorkItems on an LLM, each the way the server's routes run a request, into records.

Prompt length checks, max_tokens from the prompt, n choices and the response body are the
server's (openai_api/translate.py, openai_api/responses.py); only the transport differs.
"""
from __future__ import annotations

import concurrent.futures as cf
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from nanovl.batch.jobs import error_record, success_record
from nanovl.batch.prepare import WorkItem
from nanovl.openai_api import responses as R
from nanovl.openai_api import translate
from nanovl.openai_api.errors import as_request_error


@dataclass
class Done:
    """A finished item: its output `record`, whether it succeeded, tokens generated, which replica ran it."""

    record: dict[str, Any]
    is_ok: bool
    num_output_tokens: int = 0
    replica: int | None = None


def model_name(model: str | Path | None) -> str:
    """The name responses report: the checkpoint folder's name, as `nanovl serve` reports by default."""
    if model is None:
        return "nanovl-tiny"
    return Path(str(model).rstrip("/")).name or str(model)


@dataclass
class _Plan:
    """An item ready for the engine: its (prompt, SamplingParams) jobs, and how their finals become the body."""

    item: WorkItem
    jobs: list[tuple[Any, Any]]
    shape: Callable[[list[Any]], dict[str, Any]]
    finals: dict[int, Any] = field(default_factory=dict)
    error: Exception | None = None


class Executor:
    """Runs WorkItems on `llm` (an nanovl.llm.LLM): each item as the routes run a request."""

    def __init__(self, llm, *, replica: int | None = None, name: str | None = None) -> None:
        self.llm = llm
        self.replica = replica
        self.name = name or model_name(llm.engine.config.model)
        self.max_model_len = llm.engine.max_model_len
        self.max_prompt_chars = translate.max_prompt_chars(llm.tokenizer, self.max_model_len)

    def run(self, item: WorkItem) -> Done:
        """One item's record (a failure is a record too: 4xx for the request's fault, 500 otherwise)."""
        return next(self.run_many([item]))

    def run_many(self, items: Iterable[WorkItem], *, read_ahead: int | None = None) -> Iterator[Done]:
        """Each item's Done in the order they finish. One thread steps the engine for every request in
        flight (`LLM.generate_as_completed`); prompts and media are prepared by two worker threads,
        at most `read_ahead` items (default 2 x max_num_seqs) ahead, while the engine decodes."""
        read_ahead = read_ahead or 2 * self.llm.engine.config.max_num_seqs
        flight = _Flight()
        jobs = flight.jobs(_prepared(self._plan, items, read_ahead))
        for index, out in self.llm.generate_as_completed(jobs, max_in_flight=read_ahead):
            plan = flight.settle(index, out)
            if plan is not None:
                yield self._finish(plan)
            yield from flight.take_refused()
        yield from flight.take_refused()

    def _plan(self, item: WorkItem) -> _Plan | Done:
        try:
            return self._plan_chat(item) if item.is_chat else self._plan_completion(item)
        except Exception as exc:  # noqa: BLE001 - each request fails alone; the job goes on
            return self._failed(item, exc)

    def _finish(self, plan: _Plan) -> Done:
        if plan.error is not None:
            return self._failed(plan.item, plan.error)
        try:
            body = plan.shape([plan.finals[k] for k in range(len(plan.jobs))])
        except Exception as exc:  # noqa: BLE001
            return self._failed(plan.item, exc)
        return Done(success_record(plan.item.custom_id, body), True, body["usage"]["completion_tokens"],
                    self.replica)

    def _failed(self, item: WorkItem, exc: Exception) -> Done:
        err = as_request_error(exc, prompt_param="messages" if item.is_chat else "prompt")
        record = error_record(item.custom_id, item.line_no, err.status, err.message, param=err.param, code=err.code)
        return Done(record, False, replica=self.replica)

    def _plan_chat(self, item: WorkItem) -> _Plan:
        req, inputs = item.request, item.inputs
        translate.check_prompt_chars(translate.chat_text_chars(inputs.messages), self.max_prompt_chars,
                                     self.max_model_len, "messages")
        processed = self.llm.processor.process_chat(inputs.messages, enable_thinking=inputs.enable_thinking,
                                                    tools=inputs.tools,
                                                    chat_template_kwargs=inputs.chat_template_kwargs)
        jobs = translate.chat_jobs(req, inputs, processed, self.max_model_len)
        num_lp = translate.chat_logprobs_count(req)

        def shape(finals: list[Any]) -> dict[str, Any]:
            return R.chat_completion(R.new_id("chatcmpl"), R.now(), self.name, finals,
                                     R.chat_logprobs_of(self.llm.tokenizer, finals, num_lp),
                                     parse_tools=translate.parses_tools(req))

        return _Plan(item, jobs, shape)

    def _plan_completion(self, item: WorkItem) -> _Plan:
        req, tok = item.request, self.llm.tokenizer
        translate.check_completion_chars(item.prompts, self.max_prompt_chars, self.max_model_len)
        prompts = [tok.encode(p) if isinstance(p, str) else list(p) for p in item.prompts]
        jobs = translate.completion_jobs(req, prompts, self.max_model_len)
        echoes = [tok.decode(ids) if req.echo else "" for ids in prompts for _ in range(req.n)]

        def shape(finals: list[Any]) -> dict[str, Any]:
            logprobs = R.completion_logprobs_of(tok, finals, echoes, req.logprobs,
                                                skip_special_tokens=req.skip_special_tokens)
            texts = [e + o.text for o, e in zip(finals, echoes)]
            return R.completion(R.new_id("cmpl"), R.now(), self.name, finals, texts, logprobs,
                                sum(len(ids) for ids in prompts))

        return _Plan(item, jobs, shape)


class _Flight:
    """The plans whose jobs are in the engine, by job index (dropped once settled, so memory follows
    the work in flight), and the items refused before reaching it."""

    def __init__(self) -> None:
        self.owners: dict[int, tuple[_Plan, int]] = {}
        self.refused: deque[Done] = deque()
        self.num_jobs = 0

    def jobs(self, plans: Iterable[_Plan | Done]) -> Iterator[tuple[Any, Any]]:
        """The engine's (prompt, params) jobs of each plan, in order; refusals set aside."""
        for plan in plans:
            if isinstance(plan, Done):
                self.refused.append(plan)
                continue
            for choice, job in enumerate(plan.jobs):
                self.owners[self.num_jobs] = (plan, choice)
                self.num_jobs += 1
                yield job

    def settle(self, index: int, out: Any) -> _Plan | None:
        """Record job `index`'s output (or exception); the plan once all its jobs are in."""
        plan, choice = self.owners.pop(index)
        if isinstance(out, Exception):
            plan.error = plan.error or out
        plan.finals[choice] = out
        return plan if len(plan.finals) == len(plan.jobs) else None

    def take_refused(self) -> Iterator[Done]:
        while self.refused:
            yield self.refused.popleft()


def _prepared(plan: Callable[[WorkItem], Any], items: Iterable[WorkItem], read_ahead: int) -> Iterator[Any]:
    """plan(item) for each item, in order, computed by two threads up to `read_ahead` items ahead."""
    pool = cf.ThreadPoolExecutor(max_workers=2, thread_name_prefix="nanovl-batch-prep")
    window: deque[cf.Future] = deque()
    try:
        for item in items:
            window.append(pool.submit(plan, item))
            if len(window) >= read_ahead:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
