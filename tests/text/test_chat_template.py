"""Chat rendering: the built-in template against SPEC Part G strings, custom templates, sandbox.

Run: pytest tests/text/test_chat_template.py
"""
from __future__ import annotations

import pytest

from nanovl.chat_template import builtin_template, render_chat
from nanovl.train.tokenizer import build_tiny_tokenizer

U, A, S, END = "<SPECIAL_11>User\n", "<SPECIAL_11>Assistant\n", "<SPECIAL_10>System\n", "\n<SPECIAL_12>\n"


def test_render_chat_no_system_message():
    out = render_chat([{"role": "user", "content": "Hello"}])
    assert out.prompt == "<SPECIAL_11>User\nHello\n<SPECIAL_11>Assistant\n<think>\n"
    assert out.enable_thinking is True and out.media == []


def test_render_chat_system_with_no_think():
    msgs = [{"role": "system", "content": "You are a helpful assistant. /no_think"},
            {"role": "user", "content": "Hi"}]
    out = render_chat(msgs)
    assert out.prompt == ("<SPECIAL_10>System\nYou are a helpful assistant.\n"
                          "<SPECIAL_11>User\nHi\n<SPECIAL_11>Assistant\n<think></think>")
    assert out.enable_thinking is False


def test_render_chat_multi_turn_strips_history_reasoning():
    msgs = [{"role": "system", "content": "/no_think Be brief."},
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": "<think>\nEasy: add them.\n</think>\n\n4"},
            {"role": "user", "content": "And 3+3? /think"}]
    out = render_chat(msgs)
    assert out.prompt == ("<SPECIAL_10>System\nBe brief.\n"
                          "<SPECIAL_11>User\nWhat is 2+2?\n"
                          "<SPECIAL_11>Assistant\n4\n<SPECIAL_12>\n"
                          "<SPECIAL_11>User\nAnd 3+3?\n"
                          "<SPECIAL_11>Assistant\n<think>\n")
    assert out.enable_thinking is True


def test_render_chat_explicit_flag_overrides_messages():
    msgs = [{"role": "user", "content": "Hi /think"}]
    assert render_chat(msgs, enable_thinking=False).prompt.endswith("<SPECIAL_11>Assistant\n<think></think>")
    msgs = [{"role": "user", "content": "Hi /no_think"}]
    assert render_chat(msgs, enable_thinking=True).prompt == "<SPECIAL_11>User\nHi\n<SPECIAL_11>Assistant\n<think>\n"


def test_render_chat_image_and_video_placeholders():
    msgs = [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x/a.png"}},
        {"type": "text", "text": "Compare these."},
        {"type": "image", "image": "b.jpg"},
        {"type": "video_url", "video_url": {"url": "c.mp4"}, "fps": 1}]},
        {"role": "assistant", "content": "Done."},
        {"role": "user", "content": [{"type": "video", "video": "d.mp4"}]}]
    out = render_chat(msgs)
    assert out.prompt == ("<SPECIAL_11>User\n<image>\n<image>\n<video>\nCompare these.\n"
                          "<SPECIAL_11>Assistant\nDone.\n<SPECIAL_12>\n"
                          "<SPECIAL_11>User\n<video>\n"
                          "<SPECIAL_11>Assistant\n<think>\n")
    assert out.media == [{"type": "image", "data": "https://x/a.png"}, {"type": "image", "data": "b.jpg"},
                         {"type": "video", "data": "c.mp4", "fps": 1}, {"type": "video", "data": "d.mp4"}]


def test_render_chat_tools_and_tool_responses():
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
    msgs = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
            {"role": "tool", "content": "sunny"}, {"role": "tool", "content": "21C"}]
    out = render_chat(msgs, tools=tools, enable_thinking=False)
    assert out.prompt.startswith(S + "You can use the following tools to assist the user if required:\n"
                                 '<AVAILABLE_TOOLS>[{"name": "get_weather", "parameters": {"type": "object"}}]'
                                 "</AVAILABLE_TOOLS>\n\nIf you decide to call any tool(s)")
    assert out.prompt.endswith(
        "or just respond to the user.\n" + U + "Weather in Paris?\n"
        + A + '<TOOLCALL>[{"name": "get_weather", "arguments": {"city": "Paris"}}]</TOOLCALL>' + END
        + U + "<TOOL_RESPONSE>[sunny, 21C]</TOOL_RESPONSE>\n" + A + "<think></think>")


def test_render_chat_without_generation_prompt():
    out = render_chat([{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}],
                      add_generation_prompt=False)
    assert out.prompt == U + "x\n" + A + "y" + END


def test_render_chat_checkpoint_template_string_content():
    template = ("{{ bos_token }}{% for m in messages %}[{{ m.role }}]{{ m.content }}|{% endfor %}"
                "{% if add_generation_prompt %}[assistant]{{ 'T' if enable_thinking else 'N' }}{% endif %}")
    msgs = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "a.png"}},
                                         {"type": "text", "text": "What is it?"}]}]
    out = render_chat(msgs, template=template, enable_thinking=False, extra_vars={"bos_token": "<s>"})
    # a template that does not walk content parts gets the markers inlined as text
    assert out.prompt == "<s>[user]<image>\nWhat is it?|[assistant]N"
    assert out.media == [{"type": "image", "data": "a.png"}]


def test_render_chat_checkpoint_template_walking_parts():
    template = ("{% for m in messages %}{% for p in m['content'] %}"
                "{% if p.type == 'text' %}{{ p.text }}{% else %}<IMG>{% endif %}{% endfor %}{% endfor %}")
    msgs = [{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "image", "image": "x"}]}]
    assert render_chat(msgs, template=template).prompt == "a<IMG>"


def test_render_chat_reports_thinking_decided_by_template():
    msgs = [{"role": "user", "content": "q"}]
    assert render_chat(msgs, template="{{ messages[0].content }}<think></think>").enable_thinking is False
    assert render_chat(msgs, template="A: <think>\n", enable_thinking=False).enable_thinking is True
    # a template without reasoning markers: the reply is plain answer text
    assert render_chat(msgs, template="{{ messages[0].content }}\nA:").enable_thinking is False


@pytest.mark.parametrize("template", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ raise_exception.__globals__['os'].system('echo pwned') }}",
    "{{ messages.__class__.__init__.__globals__ }}",
    "{% set x = messages.append(1) %}{{ messages }}",
], ids=["subclasses", "globals_os", "init_globals", "mutate"])
def test_sandbox_blocks_python_internals(template):
    with pytest.raises(ValueError, match="unsafe"):
        render_chat([{"role": "user", "content": "hi"}], template=template)


def test_template_errors_become_value_errors():
    with pytest.raises(ValueError, match="only come first"):
        render_chat([{"role": "user", "content": "a"}, {"role": "system", "content": "b"}])
    with pytest.raises(ValueError, match="does not compile"):
        render_chat([{"role": "user", "content": "a"}], template="{% for %}")
    with pytest.raises(ValueError, match="role"):
        render_chat([{"role": "robot", "content": "a"}])
    with pytest.raises(ValueError, match="part type"):
        render_chat([{"role": "user", "content": [{"type": "audio", "audio": "x"}]}])
    with pytest.raises(ValueError, match="image_url"):
        render_chat([{"role": "user", "content": [{"type": "image_url"}]}])



@pytest.mark.parametrize("calls", [[5], [{"bogus": 1}], "notalist", [{"function": {"arguments": "{}"}}]],
                         ids=["number", "no-function", "string", "no-name"])
def test_malformed_tool_calls_are_value_errors_naming_them(calls):
    with pytest.raises(ValueError, match=r"messages\[1\]\.tool_calls"):
        render_chat([{"role": "user", "content": "a"}, {"role": "assistant", "tool_calls": calls}])


def test_builtin_template_matches_transformers_rendering(tmp_path):
    transformers = pytest.importorskip("transformers")
    folder = build_tiny_tokenizer(tmp_path)
    assert (folder / "chat_template.jinja").read_text() == builtin_template()
    hf = transformers.AutoTokenizer.from_pretrained(str(folder))
    msgs = [{"role": "system", "content": "Be brief /no_think"},
            {"role": "user", "content": [{"type": "image", "image": "a.png"}, {"type": "text", "text": "What?"}]},
            {"role": "assistant", "content": "<think>x</think>A cat"},
            {"role": "user", "content": "And? /think"}]
    expected = hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    assert render_chat(msgs).prompt == expected
