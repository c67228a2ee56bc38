"""Pydantic request models in OpenAI's shapes, with vLLM's names for the extra sampling knobs.

Only requests are modelled: type errors here become 400s. Responses are plain dicts built in
`openai_api/responses.py`. Unknown top-level fields are ignored (clients send `user`, `store`, ...).
Counts and switches are strict (StrictInt, StrictBool): "5", 2.0 or true for n, "yes" for stream are
refused rather than coerced.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

MAX_N = 16


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Model):
    type: Literal["text"]
    text: str


class MediaURL(_Model):
    # per-item knobs ride along to the processor (max_num_tiles, fps, max_frames, ...)
    model_config = ConfigDict(extra="allow")
    url: str


class ImageURLPart(_Model):
    type: Literal["image_url"]
    image_url: MediaURL


class VideoURLPart(_Model):
    type: Literal["video_url"]
    video_url: MediaURL


class FileData(_Model):
    # OpenAI's document part; file_data is a data: URI (or bare base64 of a PDF), read as its pages
    model_config = ConfigDict(extra="allow")
    file_data: Optional[str] = None
    file_id: Optional[str] = None
    filename: Optional[str] = None


class FilePart(_Model):
    type: Literal["file"]
    file: FileData


ContentPart = Annotated[Union[TextPart, ImageURLPart, VideoURLPart, FilePart], Field(discriminator="type")]


class ChatMessage(_Model):
    # tool_calls / tool_call_id / name pass through to the chat template
    model_config = ConfigDict(extra="allow")
    role: Literal["system", "user", "assistant", "tool", "developer"]
    content: Union[str, list[ContentPart], None] = None


class JSONSchemaSpec(_Model):
    name: str = "response"
    description: Optional[str] = None
    # `schema` shadows a BaseModel attribute, hence the alias
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: Optional[bool] = None


class ResponseFormat(_Model):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: Optional[JSONSchemaSpec] = None


class StreamOptions(_Model):
    include_usage: bool = False
    continuous_usage_stats: bool = False


class SamplingFields(_Model):
    """Fields shared by /v1/chat/completions and /v1/completions."""

    model: Optional[str] = None
    max_tokens: Optional[StrictInt] = Field(default=None, ge=1)
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    min_p: Optional[float] = None
    presence_penalty: Optional[float] = None
    frequency_penalty: Optional[float] = None
    repetition_penalty: Optional[float] = None
    # a signed 64-bit range, as OpenAI's clients send (each request's own RNG takes any int)
    seed: Optional[int] = Field(default=None, ge=-(2**63), lt=2**63)
    stop: Union[str, list[str], None] = None
    stop_token_ids: Optional[list[int]] = None
    ignore_eos: bool = False
    skip_special_tokens: bool = True
    include_stop_str_in_output: bool = False
    n: StrictInt = Field(default=1, ge=1, le=MAX_N)
    stream: StrictBool = False
    stream_options: Optional[StreamOptions] = None
    response_format: Optional[ResponseFormat] = None


class ChatCompletionRequest(SamplingFields):
    """POST /v1/chat/completions."""

    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[StrictInt] = Field(default=None, ge=1)
    logprobs: StrictBool = False
    top_logprobs: Optional[int] = Field(default=None, ge=0)
    chat_template_kwargs: Optional[dict[str, Any]] = None
    # vLLM's name for the reasoning cap; `thinking_budget` (also read from chat_template_kwargs) is an alias
    thinking_token_budget: Optional[int] = Field(default=None, ge=0)
    thinking_budget: Optional[int] = Field(default=None, ge=0)
    # EVS fraction of video tokens dropped; checked here so a request without video still gets a 400
    video_pruning_rate: Optional[float] = Field(default=None, ge=0.0, lt=1.0)
    tools: Optional[list[dict[str, Any]]] = None
    tool_choice: Union[str, dict[str, Any], None] = None


class CompletionRequest(SamplingFields):
    """POST /v1/completions: a raw prompt (text or token ids), no chat template."""

    prompt: Union[str, list[int], list[str], list[list[int]]]
    logprobs: Optional[StrictInt] = Field(default=None, ge=0)
    echo: StrictBool = False
    # not supported; modelled so that a request using them gets a 400 rather than silence
    suffix: Optional[str] = None
    best_of: Optional[int] = None
