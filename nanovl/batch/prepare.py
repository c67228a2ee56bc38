"""One input line -> a WorkItem ready for any replica, or the RequestError its record reports.

Everything that needs no model happens here, on the driver: JSON, url, the body checked by the
server's own request models and translation, media read (files travel as bytes to remote replicas).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Union

from pydantic import ValidationError

from nanovl.batch.jobs import URLS, InputLine
from nanovl.openai_api import translate
from nanovl.openai_api.errors import RequestError, as_request_error, validation_problem
from nanovl.openai_api.media import LocalMediaPolicy, resolve_local_media
from nanovl.openai_api.schemas import ChatCompletionRequest, CompletionRequest

Request = Union[ChatCompletionRequest, CompletionRequest]


@dataclass
class WorkItem:
    """A checked request: chat `inputs` (media resolved) or completion `prompts`; `attempts` so far."""

    custom_id: str
    line_no: int
    request: Request
    inputs: translate.ChatInputs | None = None
    prompts: list | None = None
    attempts: int = 0

    @property
    def is_chat(self) -> bool:
        return self.inputs is not None


class LineError(Exception):
    """A line that yields no request; `custom_id` is None when the line has no usable one."""

    def __init__(self, custom_id: str | None, error: RequestError) -> None:
        super().__init__(error.message)
        self.custom_id = custom_id
        self.error = error


def parse_line(line: InputLine) -> tuple[str, str, dict[str, Any]]:
    """(custom_id, url, body) of an OpenAI Batch input line; raises LineError."""
    try:
        # utf-8-sig: a byte-order mark some editors write at the file's start is no part of the JSON
        obj = json.loads(line.raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise LineError(None, RequestError(400, f"line {line.line_no} is not UTF-8 text", code="invalid_json"))
    except json.JSONDecodeError as err:
        raise LineError(None, RequestError(400, f"line {line.line_no} is not valid JSON ({err.msg} at column "
                                                f"{err.colno})", code="invalid_json"))
    if not isinstance(obj, dict):
        raise LineError(None, RequestError(400, f"line {line.line_no} must be a JSON object, not "
                                                f"{type(obj).__name__}", code="invalid_json"))
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        raise LineError(None, RequestError(400, f"line {line.line_no}: custom_id must be a non-empty string",
                                           param="custom_id", code="invalid_custom_id"))
    try:
        custom_id.encode("utf-8")
    except UnicodeEncodeError:
        # a lone surrogate ("\ud800") is valid JSON but no text: its record could not be written
        raise LineError(None, RequestError(400, f"line {line.line_no}: custom_id is not valid Unicode text",
                                           param="custom_id", code="invalid_custom_id")) from None
    method, url, body = obj.get("method", "POST"), obj.get("url"), obj.get("body")
    if not isinstance(method, str) or method.upper() != "POST":
        raise LineError(custom_id, RequestError(405, f"method must be POST, got {method!r:.40}", param="method",
                                                code="method_not_allowed"))
    if url not in URLS:
        raise LineError(custom_id, RequestError(404, f"unknown url {url!r:.80}; a batch takes "
                                                     f"{' or '.join(URLS)}", param="url", code="unknown_url"))
    if not isinstance(body, dict):
        raise LineError(custom_id, RequestError(400, "body must be a JSON object", param="body",
                                                code="invalid_request"))
    return custom_id, url, body


def prepare(custom_id: str, line_no: int, url: str, body: dict[str, Any], media: LocalMediaPolicy) -> WorkItem:
    """Validate and translate `body` as the server would, read its media; raises LineError."""
    chat = url == "/v1/chat/completions"
    try:
        req = (ChatCompletionRequest if chat else CompletionRequest).model_validate(body)
        translate.check_supported(req)
        if chat:
            inputs = translate.chat_inputs(req)
            # SamplingParams' own checks (temperature, schema shape, ...) now, not after the media work
            translate.sampling_params(req, max_tokens=1, logprobs=translate.chat_logprobs_count(req),
                                      enable_thinking=inputs.enable_thinking, thinking_budget=inputs.thinking_budget)
            resolve_local_media(inputs.messages, media)
            return WorkItem(custom_id, line_no, req, inputs=inputs)
        prompts = translate.completion_prompts(req)
        translate.sampling_params(req, max_tokens=1, logprobs=req.logprobs)
        return WorkItem(custom_id, line_no, req, prompts=prompts)
    except ValidationError as err:
        message, param = validation_problem(err.errors())
        raise LineError(custom_id, RequestError(400, message, param=param, code="invalid_request"))
    except Exception as err:  # noqa: BLE001 - every refusal becomes this line's record
        raise LineError(custom_id, as_request_error(err, prompt_param="messages" if chat else "prompt"))
