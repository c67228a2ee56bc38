"""Streaming detokenisation: whole UTF-8 characters only, stop strings never leak.

Run: pytest tests/text/test_detokenizer_stream.py
"""
from __future__ import annotations

import random

import pytest

from nanovl.engine.detokenizer import IncrementalDetokenizer
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    return Tokenizer.from_dir(build_tiny_tokenizer(tmp_path_factory.mktemp("tok")))


def _byte_chars() -> dict[int, str]:
    """GPT-2 byte-level alphabet: printable latin-1 bytes map to themselves, the rest to 256+."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _stream(tok, ids, **kwargs):
    detok = IncrementalDetokenizer(tok, **kwargs)
    deltas = [detok.add(i) for i in ids]
    deltas.append(detok.flush())
    return detok, deltas


def test_emoji_fed_byte_by_byte(tok):
    table = _byte_chars()
    text = "ok 🙂 中"
    ids = [tok.token_to_id(table[b]) for b in text.encode("utf-8")]
    assert None not in ids and len(ids) == len(text.encode("utf-8"))
    _, deltas = _stream(tok, ids, stop=[])
    assert all("\ufffd" not in d for d in deltas)
    # the 4 bytes of the emoji give text only on the last one
    emoji_start = len("ok ".encode())
    assert deltas[emoji_start:emoji_start + 4] == ["", "", "", "🙂"]
    assert "".join(deltas) == text


@pytest.mark.parametrize("text", ["Ünïcödé 🙂🚀 中文字符 日本語 👩‍👩‍👧!", "plain ascii text, 123"])
def test_deltas_are_whole_characters(tok, text):
    _, deltas = _stream(tok, tok.encode(text))
    assert all("\ufffd" not in d for d in deltas) and "".join(deltas) == text


def test_stop_string_spanning_tokens_never_reaches_output(tok):
    text = "The total is 42. STOPPING now and more"
    assert len(tok.encode("STOPPING")) > 1
    detok, deltas = _stream(tok, tok.encode(text), stop=["STOPPING"])
    assert "".join(deltas) == "The total is 42. " and detok.text == "The total is 42. "
    assert detok.finished and detok.stop_str == "STOPPING"
    # no delta ever carried a piece of the stop string
    assert all("S" not in d for d in deltas)


def test_include_stop_str_in_output(tok):
    detok, deltas = _stream(tok, tok.encode("abc END tail"), stop=["END"], include_stop_str_in_output=True)
    assert "".join(deltas) == "abc END" and detok.finished


def test_earliest_stop_wins_and_nothing_after(tok):
    detok = IncrementalDetokenizer(tok, stop=["world", "lo w"])
    out = "".join(detok.add(i) for i in tok.encode("hello world, hello again"))
    assert out == "hel" and detok.stop_str == "lo w"
    assert detok.add(tok.encode("x")[0]) == "" and detok.flush() == ""


def test_partial_stop_is_released_when_it_cannot_match(tok):
    detok = IncrementalDetokenizer(tok, stop=["STOP"])
    shown = "".join(detok.add(i) for i in tok.encode("wait ST"))
    assert shown == "wait "
    shown += "".join(detok.add(i) for i in tok.encode("AY"))
    assert shown == "wait STAY"
    shown += "".join(detok.add(i) for i in tok.encode(" ST"))
    assert shown + detok.flush() == "wait STAY ST"


def test_skip_special_tokens(tok):
    ids = tok.encode("<think>\nhm\n</think>Hi<image><SPECIAL_12>")
    _, deltas = _stream(tok, ids, skip_special_tokens=True)
    assert "".join(deltas) == "<think>\nhm\n</think>Hi"
    _, deltas = _stream(tok, ids, skip_special_tokens=False)
    assert "".join(deltas) == "<think>\nhm\n</think>Hi<image><SPECIAL_12>"


def test_stop_string_with_multibyte_characters(tok):
    table = _byte_chars()
    text = "a 中文 b 🙂 c"
    ids = [tok.token_to_id(table[b]) for b in text.encode("utf-8")]
    detok, deltas = _stream(tok, ids, stop=["🙂"])
    assert "".join(deltas) == "a 中文 b " and detok.finished


def test_random_texts_and_stops_against_plain_search(tok):
    rng = random.Random(11)
    alphabet = list("ab xyz.,") + ["中", "🙂", "é", "\n", "END", "<think>"]
    for _ in range(150):
        text = "".join(rng.choices(alphabet, k=rng.randint(1, 30)))
        stops = [s for s in {text[i:i + rng.randint(1, 4)] for i in rng.sample(range(len(text)), 1)} if s.strip()]
        stops += ["zz", "🙂x"]
        cut = min([text.find(s) for s in stops if s in text], default=len(text))
        _, deltas = _stream(tok, tok.encode(text), stop=stops)
        assert "".join(deltas) == text[:cut], (text, stops)
        assert all("\ufffd" not in d for d in deltas)


def test_prompt_context_is_not_emitted(tok):
    detok = IncrementalDetokenizer(tok, prompt_ids=tok.encode("<SPECIAL_11>Assistant\n<think></think>"))
    assert "".join(detok.add(i) for i in tok.encode("Hello")) + detok.flush() == "Hello"


def test_rejects_empty_stop(tok):
    with pytest.raises(ValueError, match="stop"):
        IncrementalDetokenizer(tok, stop=[""])
