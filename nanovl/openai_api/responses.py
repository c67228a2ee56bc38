"""RequestOutput -> OpenAI JSON: chat completions and their SSE chunks, text completions, usage, logprobs.

Pure functions of the engine's outputs, shared by the server's routes and batch jobs.
"""
from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any, Sequence

from nanovl.engine.outputs import RequestOutput, TokenLogprob
from nanovl.tool_calls import parse_tool_calls


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def now() -> int:
    return int(time.time())


def sse(payload: dict[str, Any] | str) -> str:
    """One server-sent event; `payload` is a dict (JSON) or the literal "[DONE]"."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


def usage(num_prompt: int, num_completion: int) -> dict[str, int]:
    return {"prompt_tokens": num_prompt, "completion_tokens": num_completion,
            "total_tokens": num_prompt + num_completion}


def usage_of(finals: Sequence[RequestOutput]) -> dict[str, int]:
    """n choices share one prompt: count its tokens once, the completions of all."""
    prompt = finals[0].num_prompt_tokens if finals else 0
    return usage(prompt, sum(o.num_generated_tokens for o in finals))


# ------------------------------------------------------------------ logprobs
def _token_text(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id])


def _bytes(tokenizer, token_id: int) -> list[int]:
    # the token's own bytes: a token holding part of a character decodes alone to U+FFFD
    return list(tokenizer.token_bytes(token_id))


@dataclass(frozen=True)
class TextCursor:
    """Where the next token starts in a choice's text: whole characters so far, plus the bytes of
    a character that earlier tokens began and have not finished (they take no room yet)."""
    chars: int = 0
    pending: bytes = b""

    def advance(self, data: bytes) -> "TextCursor":
        buf = self.pending + data
        # a UTF-8 character is at most 4 bytes, so an unfinished tail is 1-3 bytes long
        for cut in range(len(buf), max(len(buf) - 4, -1), -1):
            try:
                done = buf[:cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            return TextCursor(self.chars + len(done), buf[cut:])
        # bytes that never become UTF-8 decode as one U+FFFD each in the text
        return TextCursor(self.chars + len(buf.decode("utf-8", errors="replace")), b"")


def _finite(x: float) -> float:
    # JSON has no -inf; a token the mask ruled out still needs a number
    return x if math.isfinite(x) else -9999.0


def chat_logprobs(tokenizer, items: Sequence[TokenLogprob | None], num_top: int) -> dict[str, Any]:
    """OpenAI chat shape: {"content": [{"token", "logprob", "bytes", "top_logprobs": [...]}]}."""
    content = []
    for lp in items:
        if lp is None:
            continue
        tok = _token_text(tokenizer, lp.token_id)
        top = [{"token": _token_text(tokenizer, tid), "logprob": _finite(v), "bytes": _bytes(tokenizer, tid)}
               for tid, v in lp.top[:num_top]]
        content.append({"token": tok, "logprob": _finite(lp.logprob), "bytes": _bytes(tokenizer, lp.token_id),
                        "top_logprobs": top})
    return {"content": content}


def completion_logprobs(tokenizer, items: Sequence[TokenLogprob | None], num_top: int,
                        offset: int | TextCursor = 0, *,
                        skip_special_tokens: bool = True) -> tuple[dict[str, Any], TextCursor]:
    """Legacy completions shape: tokens, token_logprobs, top_logprobs, text_offset.

    Args:
        offset: where the first token's text starts in the choice's `text` (the echo's length, or
            the cursor an earlier chunk returned).
        skip_special_tokens: as the request's; a token the text leaves out takes no room in it.
    Returns:
        (the logprobs object, the cursor just past the last token) so a stream continues from there.
        A token that finishes a character begun by earlier tokens shares their offset: the
        character's start.
    """
    cursor = offset if isinstance(offset, TextCursor) else TextCursor(offset)
    tokens, values, tops, offsets = [], [], [], []
    for lp in items:
        if lp is None:
            continue
        tokens.append(_token_text(tokenizer, lp.token_id))
        values.append(_finite(lp.logprob))
        tops.append({_token_text(tokenizer, tid): _finite(v) for tid, v in lp.top[:num_top]} if num_top else None)
        offsets.append(cursor.chars)
        if not (skip_special_tokens and tokenizer.is_special(lp.token_id)):
            cursor = cursor.advance(tokenizer.token_bytes(lp.token_id))
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}, cursor


def chat_logprobs_of(tokenizer, finals: Sequence[RequestOutput], num_top: int | None) -> list[dict | None]:
    """Each final choice's chat logprobs object (None per choice when logprobs are off)."""
    return [chat_logprobs(tokenizer, o.logprobs or [], num_top) if num_top is not None else None for o in finals]


def completion_logprobs_of(tokenizer, finals: Sequence[RequestOutput], echoes: Sequence[str],
                           num_top: int | None, *, skip_special_tokens: bool) -> list[dict | None]:
    """Each final choice's completions logprobs, offsets counted after its echoed prompt."""
    if num_top is None:
        return [None] * len(finals)
    return [completion_logprobs(tokenizer, o.logprobs or [], num_top, len(e),
                                skip_special_tokens=skip_special_tokens)[0] for o, e in zip(finals, echoes)]


# ---------------------------------------------------------------------- chat
def chat_message(out: RequestOutput, *, parse_tools: bool = False) -> tuple[dict[str, Any], str | None]:
    """(the assistant message, its finish_reason). With `parse_tools` (the request offered tools), the
    answer's <TOOLCALL> blocks become `tool_calls` and the reason "tool_calls"."""
    msg: dict[str, Any] = {"role": "assistant", "content": out.text}
    finish_reason = out.finish_reason
    if parse_tools and out.text:
        content, calls = parse_tool_calls(out.text)
        if calls:
            msg["content"], msg["tool_calls"] = content, [c.to_openai() for c in calls]
            finish_reason = "tool_calls"
    if out.reasoning_content is not None:
        msg["reasoning_content"] = out.reasoning_content
    return msg, finish_reason


def chat_completion(resp_id: str, created: int, model: str, finals: Sequence[RequestOutput],
                    logprobs: Sequence[dict | None], *, parse_tools: bool = False) -> dict[str, Any]:
    choices = []
    for i, (o, lp) in enumerate(zip(finals, logprobs)):
        msg, finish_reason = chat_message(o, parse_tools=parse_tools)
        choices.append({"index": i, "message": msg, "logprobs": lp, "finish_reason": finish_reason})
    return {"id": resp_id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": usage_of(finals)}


def chat_delta(out: RequestOutput) -> dict[str, str]:
    delta: dict[str, str] = {}
    if out.delta_reasoning:
        delta["reasoning_content"] = out.delta_reasoning
    if out.delta:
        delta["content"] = out.delta
    return delta


def chat_chunk(resp_id: str, created: int, model: str, index: int, delta: dict[str, Any], *,
               finish_reason: str | None = None, logprobs: dict | None = None,
               usage_stats: dict | None = None) -> dict[str, Any]:
    choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
    chunk = {"id": resp_id, "object": "chat.completion.chunk", "created": created, "model": model,
             "choices": [choice]}
    if usage_stats is not None:
        chunk["usage"] = usage_stats
    return chunk


def usage_chunk(resp_id: str, created: int, model: str, obj: str, usage_stats: dict) -> dict[str, Any]:
    """The final chunk of `stream_options.include_usage`: no choices, just the totals."""
    return {"id": resp_id, "object": obj, "created": created, "model": model, "choices": [], "usage": usage_stats}


# --------------------------------------------------------------- completions
def completion(resp_id: str, created: int, model: str, finals: Sequence[RequestOutput], texts: Sequence[str],
               logprobs: Sequence[dict | None], prompt_tokens: int) -> dict[str, Any]:
    choices = [{"index": i, "text": t, "logprobs": lp, "finish_reason": o.finish_reason}
               for i, (o, t, lp) in enumerate(zip(finals, texts, logprobs))]
    return {"id": resp_id, "object": "text_completion", "created": created, "model": model,
            "choices": choices, "usage": usage(prompt_tokens, sum(o.num_generated_tokens for o in finals))}


def completion_chunk(resp_id: str, created: int, model: str, index: int, text: str, *,
                     finish_reason: str | None = None, logprobs: dict | None = None) -> dict[str, Any]:
    return {"id": resp_id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish_reason}]}
