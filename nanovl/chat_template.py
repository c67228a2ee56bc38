"""Chat messages -> prompt text, with the checkpoint's jinja template or the built-in one.

Templates run in a jinja2 sandbox (a template comes with a downloaded checkpoint, so it must not
reach Python internals). Media parts become `<image>` / `<video>` markers that the processor
expands later; `RenderedChat.media` lists those parts in prompt order.
"""
from __future__ import annotations

import datetime
import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Mapping, Sequence

import jinja2
from jinja2 import nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from nanovl.reasoning import THINK_END, THINK_START, resolve_thinking

ROLES = ("system", "user", "assistant", "tool")
# part type -> (media kind, key holding the source); text parts are handled apart
MEDIA_PARTS = {
    "image": ("image", "image"),
    "image_url": ("image", "image_url"),
    "video": ("video", "video"),
    "video_url": ("video", "video_url"),
}


@dataclass(frozen=True)
class RenderedChat:
    """A rendered prompt plus what the processor needs next.

    prompt: the text to tokenize (add_special_tokens=False); media markers left unexpanded.
    enable_thinking: whether the prompt opens a thought ("<think>\\n") or closes it.
    media: one dict per image/video part in prompt order: {"type": "image"|"video",
        "data": url / path / object, **other keys of the part}.
    """

    prompt: str
    enable_thinking: bool
    media: list[dict] = field(default_factory=list)


@functools.lru_cache(maxsize=1)
def builtin_template() -> str:
    """The shipped Nemotron Nano v2 inference template (nanovl/assets/chat_template.jinja)."""
    return (resources.files("nanovl") / "assets" / "chat_template.jinja").read_text(encoding="utf-8")


def render_chat(
    messages: Sequence[Mapping[str, Any]],
    *,
    template: str | None = None,
    enable_thinking: bool | None = None,
    add_generation_prompt: bool = True,
    tools: Sequence[Mapping[str, Any]] | None = None,
    extra_vars: Mapping[str, Any] | None = None,
) -> RenderedChat:
    """Render OpenAI-style chat messages into one prompt string.

    Args:
        messages: [{"role": "system"|"user"|"assistant"|"tool", "content": str | list of parts
            | None, ...}]; parts are {"type": "text", "text": ...}, {"type": "image_url",
            "image_url": {"url": ...}}, {"type": "video_url", ...}, {"type": "image", "image": ...}
            or {"type": "video", "video": ...}.
        template: jinja source (the checkpoint's); None uses the built-in template.
        enable_thinking: explicit reasoning switch; None lets /think and /no_think decide.
        add_generation_prompt: end with the assistant header and the thinking opener.
        tools: OpenAI tool definitions, rendered into the system turn.
        extra_vars: more template variables (bos_token, eos_token, ...).
    Returns:
        RenderedChat(prompt, enable_thinking, media).
    """
    msgs, media = _normalize(messages)
    thinking = resolve_thinking(msgs, enable_thinking)
    source = builtin_template() if template is None else template
    compiled, uses_parts = _compile(source)
    if not uses_parts:
        msgs = [{**m, "content": _flatten(m["content"])} for m in msgs]
    variables = dict(extra_vars or {})
    variables.update(messages=msgs, tools=list(tools) if tools else None,
                     add_generation_prompt=add_generation_prompt, enable_thinking=thinking)
    try:
        prompt = compiled.render(**variables)
    except (jinja2.TemplateError, TypeError) as err:  # TypeError: a value the template cannot write
        raise ValueError(f"chat template failed: {err}") from err
    if add_generation_prompt:
        # a checkpoint template may decide thinking itself (or not know it at all): the reply
        # is parsed for reasoning only when the prompt really opened a thought
        thinking = prompt.rstrip("\n").endswith(THINK_START) and not prompt.endswith(THINK_START + THINK_END)
    return RenderedChat(prompt=prompt, enable_thinking=thinking, media=media)


def _normalize(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[dict]]:
    """Check roles and parts; string content stays a string, lists keep their parts."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, Sequence):
        raise ValueError("messages must be a list of {'role', 'content'} dicts")
    if not messages:
        raise ValueError("messages must not be empty")
    out, media = [], []
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or msg.get("role") not in ROLES:
            raise ValueError(f"messages[{i}]: role must be one of {ROLES}, got {msg!r:.80}")
        content = msg.get("content")
        if isinstance(content, list):
            content = [_check_part(part, i, media) for part in content]
        elif content is not None and not isinstance(content, str):
            raise ValueError(f"messages[{i}].content must be a string, a list of parts or None")
        entry = {**msg, "content": content}
        calls = entry.get("tool_calls")
        if calls:
            if not isinstance(calls, list):
                raise ValueError(f"messages[{i}].tool_calls must be a list of tool calls")
            entry["tool_calls"] = [_parse_arguments(c, f"messages[{i}].tool_calls[{j}]") for j, c in enumerate(calls)]
        out.append(entry)
    return out, media


def _check_part(part: Any, index: int, media: list[dict]) -> dict:
    kind = part.get("type") if isinstance(part, Mapping) else None
    if kind == "text":
        if not isinstance(part.get("text"), str):
            raise ValueError(f"messages[{index}]: a text part needs a string 'text'")
        return dict(part)
    if kind not in MEDIA_PARTS:
        raise ValueError(f"messages[{index}]: unknown content part type {kind!r}")
    media_kind, key = MEDIA_PARTS[kind]
    source = part.get(key)
    if source is None:
        raise ValueError(f"messages[{index}]: a {kind} part needs a '{key}' field")
    extra = {k: v for k, v in part.items() if k not in ("type", key)}
    if isinstance(source, Mapping) and "url" in source:
        extra.update({k: v for k, v in source.items() if k != "url"})
        source = source["url"]
    media.append({"type": media_kind, "data": source, **extra})
    return dict(part)


def _parse_arguments(call: Any, where: str) -> dict:
    """A tool call ({"function": {"name", "arguments"}} or the bare function) with its arguments parsed:
    OpenAI sends them as a JSON string; the template writes them as JSON."""
    fn = call.get("function", call) if isinstance(call, Mapping) else None
    if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
        raise ValueError(f"{where} must be an object with a function name, got {call!r:.80}")
    call, fn = dict(call), dict(fn)
    if isinstance(fn.get("arguments"), str):
        try:
            fn["arguments"] = json.loads(fn["arguments"])
        except json.JSONDecodeError:
            pass
    if "function" in call:
        call["function"] = fn
        return call
    return fn


def _flatten(content: str | list | None) -> str:
    """Parts -> one string: each media marker plus "\\n", then the text parts joined by "\\n"."""
    if not isinstance(content, list):
        return content or ""
    markers = "".join(f"<{MEDIA_PARTS[p['type']][0]}>\n" for p in content if p["type"] in MEDIA_PARTS)
    return markers + "\n".join(p["text"] for p in content if p["type"] == "text")


def _raise_exception(message: str) -> None:
    raise jinja2.TemplateError(message)


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None) -> str:
    # jinja's own tojson escapes <, >, & for HTML; prompts need the plain JSON text
    return json.dumps(value, ensure_ascii=False, indent=indent)


@functools.lru_cache(maxsize=16)
def _compile(source: str) -> tuple[jinja2.Template, bool]:
    """Compile a template once; also report whether it walks content parts itself."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now)
    try:
        tree = env.parse(source)
        template = env.from_string(tree)
    except jinja2.TemplateSyntaxError as err:
        raise ValueError(f"chat template does not compile: {err}") from err
    return template, _iterates_content(tree)


def _iterates_content(tree: nodes.Template) -> bool:
    # a template that loops over `<x>.content` / `<x>['content']` renders parts itself;
    # any other template gets string content with the media markers already in place
    for loop in tree.find_all(nodes.For):
        for node in [loop.iter, *loop.iter.find_all((nodes.Getattr, nodes.Getitem))]:
            if not isinstance(node, (nodes.Getattr, nodes.Getitem)):
                continue
            key = node.attr if isinstance(node, nodes.Getattr) else getattr(node.arg, "value", None)
            if key == "content":
                return True
        if isinstance(loop.iter, nodes.Name) and loop.iter.name == "content":
            return True
    return False
