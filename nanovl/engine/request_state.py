"""RequestState: the engine's per-request output side — RNG, thinking budget, grammar, text.

Generated ids become text through one IncrementalDetokenizer (stop strings) and one
ReasoningStream (reasoning / answer split). The grammar follows the answer only: with thinking
on it starts after the ids of `</think>` (one added token, or several plain ones), and ids
forced by the thinking budget never reach it.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from nanovl.engine.detokenizer import IncrementalDetokenizer
from nanovl.engine.outputs import RequestMetrics, RequestOutput, TokenLogprob
from nanovl.engine.request import Request, RequestStatus
from nanovl.errors import InvalidRequestError
from nanovl.reasoning import THINK_END, ReasoningStream, ThinkingBudget
from nanovl.sampling_params import SamplingParams


@dataclass
class RequestState:
    """Engine-side state of one request (the scheduler's Request holds the ids and counters)."""

    params: SamplingParams
    detokenizer: IncrementalDetokenizer
    reasoning: ReasoningStream
    thinking: bool
    think_end_ids: list[int]
    rng: random.Random = field(default_factory=random.Random)
    budget: ThinkingBudget | None = None
    grammar: Any = None
    answer_started: bool = True
    should_stop: bool = False
    save_state: bool = False
    processed: Any = None
    logprobs: list[TokenLogprob | None] = field(default_factory=list)
    reasoning_text: str = ""
    answer_text: str = ""
    _num_absorbed: int = 0
    _thought: list[int] = field(default_factory=list)
    _delta: list[str] = field(default_factory=lambda: ["", ""])

    def next_seed(self) -> int:
        """The seed of this request's next draw (ops/sampling `sample`)."""
        return self.rng.getrandbits(63)

    @classmethod
    def create(cls, req: Request, params: SamplingParams, tokenizer, *, thinking: bool,
               grammar_tokenizer: Callable[[], Any], raw: bool = False) -> "RequestState":
        """Build the state; raises InvalidRequestError for a bad response_format. `raw`: a raw
        prompt's completion, whose text is kept exactly as generated (ReasoningStream)."""
        detok = IncrementalDetokenizer(tokenizer, skip_special_tokens=params.skip_special_tokens,
                                       stop=params.stop,
                                       include_stop_str_in_output=params.include_stop_str_in_output,
                                       prompt_ids=req.prompt_token_ids)
        # the same ids ThinkingBudget forces, so a forced close always starts the answer
        think_end = tokenizer.encode(THINK_END) if thinking else []
        st = cls(params, detok, ReasoningStream(thinking_enabled=thinking, raw=raw), thinking, think_end,
                 answer_started=not thinking)
        # every draw takes its seed from the request's own RNG (ops/sampling: counter-based noise), so
        # a seeded request repeats whatever else is in the batch; an unseeded one is seeded from
        # torch's global RNG, which torch.manual_seed makes repeatable too
        st.rng = random.Random(params.seed if params.seed is not None else int(torch.randint(0, 2 ** 62, ())))
        if thinking and params.thinking_budget is not None:
            st.budget = ThinkingBudget.from_tokenizer(params.thinking_budget, tokenizer)
        if params.response_format is not None:
            from nanovl.structured.grammar import compile_grammar

            try:
                st.grammar = compile_grammar(params.response_format).new_state(grammar_tokenizer())
            except ValueError as err:
                raise InvalidRequestError(f"response_format: {err}") from err
        return st

    # ---------------------------------------------------------------- sampling
    def forced_tokens(self, output_ids: list[int]) -> list[int] | None:
        """Ids the thinking budget forces now instead of sampling (None: sample)."""
        if self.budget is None or self.answer_started:
            return None
        return self.budget.forced_tokens(output_ids)

    def allowed_mask(self, vocab_size: int) -> torch.Tensor | None:
        """bool [vocab_size] grammar mask while the answer is being written, else None."""
        if self.grammar is None or not self.answer_started or self.grammar.is_terminated():
            return None
        return self.grammar.allowed_token_mask(vocab_size)

    def accept(self, token_ids: list[int], *, forced: bool = False) -> None:
        """Advance the thinking/answer phase and the grammar by newly chosen ids."""
        for tok in token_ids:
            if not self.answer_started:
                self._thought.append(tok)
                n = len(self.think_end_ids)
                self.answer_started = n > 0 and self._thought[-n:] == self.think_end_ids
                continue
            if self.grammar is not None and not forced and not self.grammar.is_terminated():
                self.grammar.accept_token(tok)
                if self.grammar.is_terminated():
                    self.should_stop = True

    # ------------------------------------------------------------------- text
    def absorb(self, req: Request, logprobs: list[TokenLogprob | None] | None) -> None:
        """Detokenize the ids `req` gained since the last call."""
        new = req.output_token_ids[self._num_absorbed:]
        self._num_absorbed = len(req.output_token_ids)
        if logprobs:
            # one entry per token kept: a forced close of the thought can be cut short by
            # max_tokens or a stop id, and its dropped tokens must not leave their logprobs behind
            self.logprobs.extend(logprobs[:len(new)])
        text = ""
        # the EOS or stop id that ended the request is no part of the text (vLLM's rule), unless
        # the caller asked for stops in the output
        ended_by = req.status == RequestStatus.FINISHED_STOPPED and new and (
            new[-1] in req.stop_token_ids or (not req.ignore_eos and new[-1] in req.eos_token_ids))
        if ended_by and not self.params.include_stop_str_in_output:
            new = new[:-1]
        for tok in new:
            text += self.detokenizer.add(tok)
            if self.detokenizer.finished:
                self.should_stop = True
                break
        self._feed(*self.reasoning.feed(text))

    def finish(self) -> None:
        """The request ended: release held-back text."""
        tail = self.detokenizer.flush() if not self.detokenizer.finished else ""
        self._feed(*self.reasoning.feed(tail))
        self._feed(*self.reasoning.finish())

    def _feed(self, reasoning: str, answer: str) -> None:
        self.reasoning_text += reasoning
        self.answer_text += answer
        self._delta[0] += reasoning
        self._delta[1] += answer

    def output(self, req: Request) -> RequestOutput:
        """A RequestOutput with the text added since the previous call as its deltas."""
        (d_reason, d_answer), self._delta = self._delta, ["", ""]
        metrics = RequestMetrics(req.arrival_time, req.first_token_time, req.finish_time, req.num_cached_tokens)
        return RequestOutput(
            req_id=req.req_id, text=self.answer_text, delta=d_answer,
            reasoning_content=self.reasoning_text if self.thinking else None, delta_reasoning=d_reason,
            token_ids=list(req.output_token_ids), finished=req.is_finished, finish_reason=req.finish_reason,
            num_prompt_tokens=req.num_prompt_tokens, num_generated_tokens=req.num_output_tokens,
            logprobs=list(self.logprobs) if self.params.logprobs is not None else None, metrics=metrics)
