"""Tool calls parsed out of a reply (<TOOLCALL>[...]</TOOLCALL>, the format the chat template teaches)."""
from __future__ import annotations

import json

import pytest

from nanovl.tool_calls import may_hold_tool_call, parse_tool_calls


def test_one_block_with_two_calls_and_text_around_it():
    text = ('Let me check.\n<TOOLCALL>[{"name": "weather", "arguments": {"city": "Oslo"}}, '
            '{"name": "time", "arguments": "{\\"tz\\": \\"CET\\"}"}]</TOOLCALL>\n')
    rest, calls = parse_tool_calls(text)
    assert rest == "Let me check."
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [("weather", {"city": "Oslo"}), ("time", {"tz": "CET"})]
    first = calls[0].to_openai()
    assert first["type"] == "function" and first["id"].startswith("call_") and calls[0].id != calls[1].id
    assert json.loads(first["function"]["arguments"]) == {"city": "Oslo"}


def test_a_reply_that_is_only_a_call_has_no_content_and_a_bare_object_counts():
    rest, calls = parse_tool_calls('<TOOLCALL>{"name": "ping"}</TOOLCALL>')
    assert rest is None and [(c.name, c.arguments) for c in calls] == [("ping", "{}")]


@pytest.mark.parametrize("block", [
    "<TOOLCALL>[{oops}]</TOOLCALL>",
    '<TOOLCALL>[{"arguments": {}}]</TOOLCALL>',
    '<TOOLCALL>[{"name": "f", "arguments": "not json"}]</TOOLCALL>',
    '<TOOLCALL>[{"name": "f"}]',  # never closed
    '<TOOLCALL>[1, 2]</TOOLCALL>',
], ids=["not-json", "no-name", "arguments-not-json", "unclosed", "not-objects"])
def test_malformed_blocks_stay_in_the_text(block):
    rest, calls = parse_tool_calls("before " + block)
    assert calls == [] and rest == "before " + block


def test_plain_text_is_untouched():
    assert parse_tool_calls("  just words  ") == ("just words", [])


@pytest.mark.parametrize("text,held", [("hello", False), ("hello <", True), ("hello <TOOL", True),
                                       ("a <TOOLCALL>[", True), ("<b>", False), ("x <TOOLCALX", False)])
def test_a_stream_holds_back_what_may_start_a_call(text, held):
    assert may_hold_tool_call(text) is held
