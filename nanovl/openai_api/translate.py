"""OpenAI request models -> what the library takes: SamplingParams, chat messages, template kwargs.

No generation logic here: names are mapped, defaults filled from the prompt length, and the
library's own validation (SamplingParams, processor) reports the errors. Refusals raise RequestError.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from nanovl.errors import ContextLengthError
from nanovl.openai_api.errors import RequestError
from nanovl.openai_api.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields
from nanovl.sampling_params import SamplingParams

# request field -> SamplingParams field, copied when the client set it
_PASSTHROUGH = ("temperature", "top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty",
                "repetition_penalty", "seed", "stop_token_ids")


@dataclasses.dataclass
class ChatInputs:
    """A chat request split into the processor's inputs and per-request options."""

    messages: list[dict[str, Any]]
    chat_template_kwargs: dict[str, Any]
    enable_thinking: bool | None
    thinking_budget: int | None
    tools: list[dict[str, Any]] | None


def chat_inputs(req: ChatCompletionRequest) -> ChatInputs:
    """Messages as plain dicts ("developer" -> "system"), thinking switches pulled out."""
    messages = []
    for m in req.messages:
        d = m.model_dump(exclude_none=True, by_alias=True)
        if d["role"] == "developer":
            d["role"] = "system"
        if isinstance(d.get("content"), list):
            d["content"] = [_file_as_image(p) if p.get("type") == "file" else p for p in d["content"]]
        if req.video_pruning_rate is not None and isinstance(d.get("content"), list):
            for part in d["content"]:
                if part.get("type") == "video_url":
                    part["video_url"].setdefault("video_pruning_rate", req.video_pruning_rate)
        messages.append(d)
    kwargs = dict(req.chat_template_kwargs or {})
    for value, param in ((messages, "messages"), (req.tools, "tools"), (kwargs, "chat_template_kwargs")):
        _check_utf8(value, param)
    thinking = kwargs.pop("enable_thinking", None)
    if thinking is not None and not isinstance(thinking, bool):
        raise RequestError(400, "chat_template_kwargs.enable_thinking must be a boolean",
                           param="chat_template_kwargs.enable_thinking")
    in_kwargs = kwargs.pop("thinking_budget", None)
    budget = next((b for b in (req.thinking_token_budget, req.thinking_budget, in_kwargs) if b is not None), None)
    return ChatInputs(messages, kwargs, thinking, budget, req.tools)


def check_supported(req: SamplingFields) -> None:
    """Refuse OpenAI options this server does not implement, rather than silently ignore them."""
    if isinstance(req, ChatCompletionRequest):
        forced_tool_call(req)  # a tool_choice it cannot honour is refused here, before any work
    if isinstance(req, CompletionRequest):
        if req.suffix:
            raise RequestError(400, "suffix is not supported", param="suffix", code="unsupported")
        if req.best_of not in (None, 1):
            raise RequestError(400, f"best_of={req.best_of} is not supported; use n for several samples",
                               param="best_of", code="unsupported")


def _file_as_image(part: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI `file` part (a PDF, usually) as an image_url part: the processor reads a PDF as its
    pages, and media checks (size, count) then treat it like any image."""
    file = dict(part["file"])
    data = file.pop("file_data", None)
    if data is None:
        raise RequestError(400, "file parts need file_data (a data: URI); uploaded file_id references are "
                                "not supported", param="messages", code="unsupported")
    file.pop("file_id", None)
    file.pop("filename", None)
    url = data if data.startswith("data:") else f"data:application/pdf;base64,{data}"
    return {"type": "image_url", "image_url": {"url": url, **file}}


def max_prompt_chars(tokenizer, max_model_len: int) -> int:
    """Characters beyond which no text fits max_model_len tokens.

    No token spells more characters than the longest vocabulary entry (byte-level entries
    spell one character per byte), so a longer text is refused before anyone tokenizes it.
    NOTE: assumes the tokenizer's normalizer deletes no characters (true of byte-level BPE).
    """
    longest = max((len(tokenizer.id_to_token(i) or "") for i in range(tokenizer.vocab_size)), default=1)
    return max_model_len * max(longest, 1)


def check_prompt_chars(num_chars: int, limit: int, max_model_len: int, param: str) -> None:
    """Raise context_length_exceeded for a text of `num_chars` characters over `limit`."""
    if num_chars > limit:
        raise RequestError(400, f"{param} has {num_chars} characters; no text over {limit} characters fits "
                            f"the model's context of max_model_len={max_model_len} tokens",
                       param=param, code="context_length_exceeded")


def chat_text_chars(messages: list[dict[str, Any]]) -> int:
    """Characters of system/user/tool text that reach the prompt: assistant turns (whose reasoning a
    template may cut) do not count, nor the /think and /no_think switches the template removes."""
    total = 0
    for m in messages:
        content = m.get("content")
        if m.get("role") == "assistant" or content is None:
            continue
        texts = [content] if isinstance(content, str) else [p.get("text", "") for p in content
                                                            if p.get("type") == "text"]
        total += sum(len(t.replace("/no_think", "").replace("/think", "")) for t in texts)
    return total


def forced_tool_call(req: ChatCompletionRequest) -> dict[str, Any] | None:
    """The "tool_calls" response_format that tool_choice "required" or {"type": "function",
    "function": {"name": ...}} asks for (the answer must be a <TOOLCALL> block); None for
    absent / "auto" / "none"."""
    choice = req.tool_choice
    if choice in (None, "auto", "none"):
        return None
    if choice == "required":
        name = None
    elif (isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("function"), dict)
          and isinstance(choice["function"].get("name"), str)):
        name = choice["function"]["name"]
    else:
        raise RequestError(400, f"tool_choice must be \"none\", \"auto\", \"required\" or "
                            f"{{\"type\": \"function\", \"function\": {{\"name\": ...}}}}, got {choice!r:.80}",
                       param="tool_choice")
    if not req.tools:
        raise RequestError(400, "tool_choice asks for a tool call but the request offers no tools", param="tool_choice")
    if req.response_format is not None and req.response_format.type != "text":
        raise RequestError(400, "a forced tool call and a response_format cannot both shape the answer",
                           param="tool_choice")
    names = [t.get("function", {}).get("name") for t in req.tools if isinstance(t, dict)]
    if name is not None and name not in names:
        raise RequestError(400, f"tool_choice names {name!r}, which is not among the tools {names}",
                           param="tool_choice")
    return {"type": "tool_calls", "tools": req.tools, **({"name": name} if name is not None else {})}


def response_format(req: SamplingFields) -> dict[str, Any] | None:
    if isinstance(req, ChatCompletionRequest) and (forced := forced_tool_call(req)) is not None:
        return forced
    fmt = req.response_format
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return {"type": "json_object"}
    if fmt.json_schema is None:
        raise RequestError(400, "response_format of type json_schema needs a json_schema object",
                           param="response_format.json_schema")
    spec = fmt.json_schema
    return {"type": "json_schema", "json_schema": {"name": spec.name, "schema": spec.json_schema}}


def resolve_max_tokens(requested: int | None, num_prompt_tokens: int, max_model_len: int) -> int:
    """The client's max_tokens, or all of the context the prompt leaves (vLLM's default)."""
    room = max_model_len - num_prompt_tokens
    if room < 1:
        raise ContextLengthError(num_prompt_tokens, max_model_len, "no room is left for even one generated token")
    if requested is None:
        return room
    if requested > room:
        raise RequestError(400, f"this model's context is {max_model_len} tokens, but {num_prompt_tokens} prompt "
                            f"tokens + max_tokens {requested} exceed it", param="max_tokens",
                       code="context_length_exceeded")
    return requested


def sampling_params(req: SamplingFields, *, max_tokens: int, logprobs: int | None, choice: int = 0,
                    enable_thinking: bool | None = None, thinking_budget: int | None = None) -> SamplingParams:
    """SamplingParams for choice `choice` of `req` (choice k > 0 uses seed + k, so n samples differ)."""
    kwargs: dict[str, Any] = {name: getattr(req, name) for name in _PASSTHROUGH if getattr(req, name) is not None}
    if "seed" in kwargs and choice:
        # wrap within the signed 64-bit range the schema allows
        kwargs["seed"] = (kwargs["seed"] + choice + 2**63) % 2**64 - 2**63
    kwargs.update(max_tokens=max_tokens, stop=req.stop or [], ignore_eos=req.ignore_eos,
                  skip_special_tokens=req.skip_special_tokens,
                  include_stop_str_in_output=req.include_stop_str_in_output,
                  logprobs=logprobs, response_format=response_format(req),
                  enable_thinking=enable_thinking, thinking_budget=thinking_budget)
    return SamplingParams(**kwargs)


def chat_logprobs_count(req: ChatCompletionRequest) -> int | None:
    """SamplingParams.logprobs for a chat request (None = off)."""
    if not req.logprobs:
        if req.top_logprobs:
            raise RequestError(400, "top_logprobs needs logprobs=true", param="top_logprobs")
        return None
    return req.top_logprobs or 0


def chat_jobs(req: ChatCompletionRequest, inputs: ChatInputs, processed: Any,
              max_model_len: int) -> list[tuple[Any, SamplingParams]]:
    """The request's n choices as (processed prompt, SamplingParams) pairs, max_tokens filled from the
    prompt's length; the prompt goes in as is, so n choices share one pass over the media."""
    max_tokens = resolve_max_tokens(req.max_completion_tokens or req.max_tokens,
                                    len(processed.prompt_token_ids), max_model_len)
    num_lp = chat_logprobs_count(req)
    return [(processed, sampling_params(req, max_tokens=max_tokens, logprobs=num_lp, choice=i,
                                        enable_thinking=inputs.enable_thinking,
                                        thinking_budget=inputs.thinking_budget))
            for i in range(req.n)]


def completion_jobs(req: CompletionRequest, prompts: list[list[int]],
                    max_model_len: int) -> list[tuple[list[int], SamplingParams]]:
    """n choices of each tokenized prompt as (token ids, SamplingParams) pairs, prompt by prompt."""
    jobs = []
    for ids in prompts:
        max_tokens = resolve_max_tokens(req.max_tokens, len(ids), max_model_len)
        jobs += [(ids, sampling_params(req, max_tokens=max_tokens, logprobs=req.logprobs, choice=j))
                 for j in range(req.n)]
    return jobs


def check_completion_chars(prompts: list[str | list[int]], limit: int, max_model_len: int) -> None:
    """check_prompt_chars for each text prompt of a completion request."""
    for p in prompts:
        if isinstance(p, str):
            check_prompt_chars(len(p), limit, max_model_len, "prompt")


def parses_tools(req: ChatCompletionRequest) -> bool:
    """The request offered tools and let the model call them: its answer's <TOOLCALL> blocks are calls."""
    return bool(req.tools) and req.tool_choice != "none"


def completion_prompts(req: CompletionRequest) -> list[str | list[int]]:
    """The prompt field as a list of prompts (text or token ids)."""
    p = req.prompt
    if isinstance(p, str):
        prompts: list = [p]
    elif p and all(isinstance(x, int) for x in p):
        prompts = [p]
    else:
        prompts = list(p)
    _check_utf8(prompts, "prompt")
    if not prompts or any(len(x) == 0 for x in prompts):
        raise RequestError(400, "prompt must be a non-empty string or a non-empty list of token ids", param="prompt")
    return prompts


def _check_utf8(value: Any, param: str) -> None:
    """JSON may carry lone surrogates ("\\ud800"); the tokenizer cannot take them, so refuse up front."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise RequestError(400, f"{param}: text is not valid Unicode (lone surrogate)", param=param)
    elif isinstance(value, dict):
        for v in value.values():
            _check_utf8(v, param)
    elif isinstance(value, list):
        for v in value:
            _check_utf8(v, param)
