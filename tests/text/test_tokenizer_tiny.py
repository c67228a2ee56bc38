"""Tiny tokenizer builder + Tokenizer loader: layout, determinism, round-trips, speed.

Run: pytest tests/text/test_tokenizer_tiny.py
"""
from __future__ import annotations

import json
import time

import pytest

from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return build_tiny_tokenizer(tmp_path_factory.mktemp("tiny_tok"))


@pytest.fixture(scope="module")
def tok(tiny_dir):
    return Tokenizer.from_dir(tiny_dir)


def test_build_tiny_tokenizer_is_deterministic(tmp_path, tiny_dir):
    again = build_tiny_tokenizer(tmp_path / "again")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        assert (again / name).read_bytes() == (tiny_dir / name).read_bytes(), name


def test_special_token_layout(tok, tiny_dir):
    expected = {0: "<unk>", 1: "<s>", 2: "</s>", 10: "<SPECIAL_10>", 11: "<SPECIAL_11>", 12: "<SPECIAL_12>"}
    expected.update({k: f"<SPECIAL_{k}>" for k in (3, 4, 5, 6, 7, 8, 9, 13, 14, 15)})
    for token_id, text in expected.items():
        assert tok.id_to_token(token_id) == text
        assert tok.encode(text) == [token_id]
    assert tok.vocab_size == 512
    extras = ["<image>", "<img>", "</img>", "<video>", "<think>", "</think>"]
    assert [tok.token_to_id(t) for t in extras] == list(range(506, 512))
    assert (tok.image_token_id, tok.img_start_token_id, tok.img_end_token_id) == (506, 507, 508)
    assert (tok.video_token_id, tok.think_start_token_id, tok.think_end_token_id) == (509, 510, 511)
    assert (tok.bos_token_id, tok.eos_token_id, tok.unk_token_id, tok.pad_token_id) == (1, 12, 0, 0)
    assert tok.eos_token_ids == [12]
    cfg = json.loads((tiny_dir / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "PreTrainedTokenizerFast" and cfg["eos_token"] == "<SPECIAL_12>"
    assert cfg["added_tokens_decoder"]["506"]["content"] == "<image>"
    assert tok.chat_template is not None and "<SPECIAL_11>" in tok.chat_template


@pytest.mark.parametrize("text", [
    "Hello, world!",
    "Invoice INV-2041: total $1,234.56 due 2031-02-28",
    '{"name": "Ann", "tags": [1, 2.5, null, true]}',
    "emoji 🙂🚀👩‍👩‍👧 and CJK 中文字符 and 日本語のテキスト",
    "tabs\tnew\nlines\r\n  spaces   and \x00 \x7f control",
    "Ünïcödé — “quotes” ≠ ∑ 𝔘𝔫𝔦",
], ids=["ascii", "invoice", "json", "emoji_cjk", "control", "symbols"])
def test_utf8_round_trip(tok, text):
    assert tok.decode(tok.encode(text)) == text


def test_specials_and_markers_map_to_single_ids(tok):
    ids = tok.encode("<SPECIAL_11>User\n<img><image><image></img>\n<think>")
    assert ids[0] == 11 and ids[-1] == 510
    assert ids.count(506) == 2 and 507 in ids and 508 in ids


def test_encode_matches_transformers(tok, tiny_dir):
    transformers = pytest.importorskip("transformers")
    hf = transformers.AutoTokenizer.from_pretrained(str(tiny_dir))
    text = "<SPECIAL_10>System\nBe kind.\n<SPECIAL_11>User\n<image>\nWhat is 🙂 in 中文?\n"
    assert tok.encode(text) == hf.encode(text, add_special_tokens=False)
    assert hf.eos_token_id == tok.eos_token_id


def test_long_image_run_encodes_fast(tok):
    text = "<image>" * 30000
    start = time.perf_counter()
    ids = tok.encode(text)
    elapsed = time.perf_counter() - start
    assert ids == [tok.image_token_id] * 30000
    assert elapsed < 1.0, f"30000 <image> took {elapsed:.3f} s"
    mixed = "Frame 1 sampled at 0.00 seconds: <img>" + "<image>" * 256 + "</img>"
    ids = tok.encode(mixed)
    assert ids.count(tok.image_token_id) == 256 and ids[-1] == tok.img_end_token_id


def test_decode_skip_special_keeps_think_tags(tok):
    ids = tok.encode("<think>\nhm\n</think>Yes<SPECIAL_12><image>")
    assert tok.decode(ids, skip_special_tokens=True) == "<think>\nhm\n</think>Yes"
    assert tok.decode(ids) == "<think>\nhm\n</think>Yes<SPECIAL_12><image>"


def test_from_dir_reads_template_and_eos_sources(tmp_path, tiny_dir):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    cfg = json.loads((tiny_dir / "tokenizer_config.json").read_text())
    cfg["chat_template"] = [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    (folder / "generation_config.json").write_text(json.dumps({"eos_token_id": [2, 12]}))
    tok = Tokenizer.from_dir(folder)
    assert tok.chat_template == "D"
    assert tok.eos_token_ids == [12, 2]
    (folder / "chat_template.json").write_text(json.dumps({"chat_template": "J"}))
    assert Tokenizer.from_dir(folder).chat_template == "J"
    (folder / "chat_template.jinja").write_text("K")
    assert Tokenizer.from_dir(folder).chat_template == "K"


def test_added_token_listed_only_in_config_is_registered(tmp_path, tiny_dir):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "tokenizer.json").write_bytes((tiny_dir / "tokenizer.json").read_bytes())
    cfg = json.loads((tiny_dir / "tokenizer_config.json").read_text())
    cfg["added_tokens_decoder"]["512"] = {"content": "<extra>", "special": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    tok = Tokenizer.from_dir(folder)
    assert tok.encode("a<extra>")[-1] == 512 and tok.vocab_size == 513
    cfg["added_tokens_decoder"]["600"] = {"content": "<far>", "special": True}
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="<far>"):
        Tokenizer.from_dir(folder)


def test_builder_rejects_bad_sizes(tmp_path):
    with pytest.raises(ValueError, match="vocab_size"):
        build_tiny_tokenizer(tmp_path / "a", vocab_size=100)
    with pytest.raises(ValueError, match="corpus too small"):
        build_tiny_tokenizer(tmp_path / "b", vocab_size=2000, corpus=["tiny corpus"])
    with pytest.raises(ValueError, match="tokenizer.json"):
        Tokenizer.from_dir(tmp_path)


def test_split_digits_gives_one_token_per_digit_and_round_trips(tmp_path, tok):
    split = Tokenizer.from_dir(build_tiny_tokenizer(tmp_path / "split", split_digits=True))
    text = 'INV-8214 due 2023-12-12: {"total": 857.55, "qty": 40}'
    ids = split.encode(text)
    assert split.decode(ids) == text
    digits = [split.decode([i]) for i in ids if any(c.isdigit() for c in split.decode([i]))]
    assert digits == [c for c in text if c.isdigit()]
    # the default (what v1 and v2 ship) merges digits, so the option is what makes the difference
    assert any(len([c for c in tok.decode([i]) if c.isdigit()]) > 1 for i in tok.encode(text))


def test_recipe_refuses_split_digits_on_a_pair_merging_tokenizer(tmp_path, tiny_dir):
    # the flag shapes only a tokenizer the recipe builds; on an existing merging one it must not be
    # ignored silently (a GPU run would train on the tokenizer it meant to replace)
    from nanovl.train import recipe
    from nanovl.train.vocab import splits_digits

    split_dir = build_tiny_tokenizer(tmp_path / "split", split_digits=True)
    assert splits_digits(split_dir) and not splits_digits(tiny_dir)
    with pytest.raises(SystemExit, match="merges digits"):
        recipe.main(["--out", str(tmp_path / "run"), "--tokenizer", str(tiny_dir), "--split-digits",
                     "--steps", "1", "--device", "cpu"])


def test_long_texts_encode_the_same_through_the_gil_free_call(tok, monkeypatch):
    # past GIL_FREE_ENCODE_CHARS the batch call (which lets other threads run) encodes; same ids
    import nanovl.tokenizer as tokenizer_module

    text = "Frame 1 sampled at 0.50 seconds: <image> the total is 945.57 EUR\n" * 50
    short_path = tok.encode(text)
    monkeypatch.setattr(tokenizer_module, "GIL_FREE_ENCODE_CHARS", 10)
    calls = []

    class Spy:  # the library object, with its calls recorded
        def __getattr__(self, name):
            calls.append(name)
            return getattr(real, name)

    real = tok.backend
    monkeypatch.setattr(tok, "backend", Spy())
    assert tok.encode(text) == short_path and calls == ["encode_batch"]
    assert tok.encode("hi") == real.encode("hi", add_special_tokens=False).ids and calls[-1] == "encode"
