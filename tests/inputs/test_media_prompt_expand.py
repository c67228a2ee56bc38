"""Placeholder strings for images and videos; run: pytest tests/inputs/test_media_prompt_expand.py"""
from __future__ import annotations

import pytest

from nanovl.inputs.media_prompt import (ImagePrompt, VideoPrompt, expand_media_placeholders,
                                        image_placeholder, video_placeholder)


def test_image_placeholder_literal():
    assert image_placeholder(2, 3) == "<img><image><image><image><image><image><image></img>"
    assert image_placeholder(1, 1, start="[", context="x", end="]") == "[x]"


def test_image_token_counts():
    # SPEC 5a: 1024x768 -> 12 tiles + thumbnail -> 3328 tokens; one tile -> 256
    text = image_placeholder(13, 256)
    assert text.count("<image>") == 3328 and text.count("<img>") == 1 and text.count("</img>") == 1
    assert len(text) == len("<img>") + 3328 * len("<image>") + len("</img>")
    assert image_placeholder(1, 256).count("<image>") == 256


def test_video_placeholder_literal():
    text = video_placeholder([0.0, 0.5, 60.02], [2, 0, 1])
    assert text == ("Frame 1 sampled at 0.00 seconds: <img><image><image></img>\n"
                    "Frame 2 sampled at 0.50 seconds: <img></img>\n"
                    "Frame 3 sampled at 60.02 seconds: <img><image></img>")


def test_video_placeholder_rounding_and_errors():
    # two decimals, rounded: 59.999 s is written 60.00
    assert video_placeholder([59.999], [1]).startswith("Frame 1 sampled at 60.00 seconds: ")
    for ts, counts in (([0.0], [1, 2]), ([], []), ([0.0], [-1])):
        with pytest.raises(ValueError):
            video_placeholder(ts, counts)


def test_expand_in_order():
    prompt = "A<image>\nB<video>\nC<image>D"
    items = [ImagePrompt(1, 2), VideoPrompt([0.0, 0.5], [1, 0]), ImagePrompt(2, 1)]
    assert expand_media_placeholders(prompt, items) == (
        "A<img><image><image></img>\n"
        "BFrame 1 sampled at 0.00 seconds: <img><image></img>\n"
        "Frame 2 sampled at 0.50 seconds: <img></img>\n"
        "C<img><image><image></img>D")


def test_expand_no_media():
    assert expand_media_placeholders("plain <img> text", []) == "plain <img> text"


def test_expand_count_mismatch():
    with pytest.raises(ValueError, match="2 media markers but 1"):
        expand_media_placeholders("<image><image>", [ImagePrompt(1, 1)])
    with pytest.raises(ValueError, match="0 media markers but 1"):
        expand_media_placeholders("text", [ImagePrompt(1, 1)])


def test_expand_kind_mismatch():
    with pytest.raises(ValueError, match="#2"):
        expand_media_placeholders("<image><video>", [ImagePrompt(1, 1), ImagePrompt(1, 1)])


def test_expand_custom_markers_and_tokens():
    out = expand_media_placeholders("[IMG] and [VID]", [ImagePrompt(1, 2), VideoPrompt([1.0], [1])],
                                    image_marker="[IMG]", video_marker="[VID]",
                                    start="<s>", context="*", end="</s>")
    assert out == "<s>**</s> and Frame 1 sampled at 1.00 seconds: <s>*</s>"
