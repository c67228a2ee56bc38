"""A tiny byte-level BPE tokenizer laid out like the Nemotron one, for test checkpoints.

`build_tiny_tokenizer(out_dir)` trains on a built-in corpus (English, digits, JSON, invoices)
and writes tokenizer.json, tokenizer_config.json and chat_template.jinja; same files every run.
"""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Iterable

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

from nanovl.chat_template import builtin_template

# ids 0..15 as in the Nemotron tokenizer: <unk>, <s>, </s>, then reserved <SPECIAL_k>
# (10 = system header, 11 = user/assistant header, 12 = end of turn)
RESERVED = ["<unk>", "<s>", "</s>"] + [f"<SPECIAL_{k}>" for k in range(3, 16)]
# added after the learned vocabulary, like the VL extras after the 131072 base ids
EXTRA_TOKENS = ["<image>", "<img>", "</img>", "<video>", "<think>", "</think>"]
MIN_VOCAB = len(RESERVED) + 256 + len(EXTRA_TOKENS) + 16

_WORDS = ("the a an of to and in is for on with that this it as at by from be are was or "
          "invoice total amount due date number customer item quantity price tax subtotal "
          "paid balance vendor address street city country phone email order page table "
          "image video frame seconds sampled describe what where when who how why answer "
          "question summary text title name value list first second third red green blue "
          "cat dog house car tree person people document chart receipt line shows picture "
          "User Assistant System think yes no true false null hello world please thanks").split()
_JSON_KEYS = ("name", "id", "total", "items", "price", "qty", "date", "currency", "vendor",
              "address", "tags", "score", "label", "valid", "count", "text", "type")


def _builtin_corpus() -> list[str]:
    """Deterministic mix of sentences, numbers, JSON objects and invoice lines."""
    rng = random.Random(1234)
    lines = []
    for _ in range(400):
        words = rng.choices(_WORDS, k=rng.randint(4, 14))
        lines.append(" ".join(words).capitalize() + rng.choice([".", "?", "!", ","]))
    for _ in range(300):
        obj = {k: _json_value(rng) for k in rng.sample(_JSON_KEYS, rng.randint(1, 5))}
        lines.append(json.dumps(obj, separators=rng.choice([(", ", ": "), (",", ":")])))
    for i in range(300):
        qty, price = rng.randint(1, 40), rng.randint(1, 99999) / 100
        lines.append(f"INV-{rng.randint(1000, 99999)} | {rng.choice(_WORDS)} x{qty} @ ${price:.2f} "
                     f"= ${qty * price:,.2f} | due 20{rng.randint(10, 39)}-{rng.randint(1, 12):02d}-"
                     f"{rng.randint(1, 28):02d}")
        lines.append(f"Frame {i + 1} sampled at {i * 0.5:.2f} seconds: {rng.choice(_WORDS)}")
    lines.append(" ".join(str(n) for n in range(1000)))
    return lines


def _json_value(rng: random.Random):
    kind = rng.randrange(6)
    if kind == 0:
        return rng.randint(-1000, 100000)
    if kind == 1:
        return round(rng.uniform(0, 1000), 2)
    if kind == 2:
        return rng.choice([True, False, None])
    if kind == 3:
        return [rng.randint(0, 99) for _ in range(rng.randint(0, 4))]
    return " ".join(rng.choices(_WORDS, k=rng.randint(1, 4)))


def build_tiny_tokenizer(out_dir: str | Path, *, vocab_size: int = 512,
                         corpus: Iterable[str] | None = None, split_digits: bool = False) -> Path:
    """Train the tiny tokenizer and write it into `out_dir` (created if missing).

    Args:
        out_dir: folder that receives tokenizer.json, tokenizer_config.json, chat_template.jinja.
        vocab_size: total number of ids, reserved and added tokens included.
        corpus: training text; None uses the built-in corpus.
        split_digits: every digit its own token (no merges across digits), so a number is read
            and written one glyph at a time: 10 classes per glyph instead of ~100 per digit pair.
    Returns:
        the output folder as a Path.
    """
    if vocab_size < MIN_VOCAB:
        raise ValueError(f"vocab_size must be >= {MIN_VOCAB} (specials + 256 bytes + merges), got {vocab_size}")
    texts = list(_builtin_corpus() if corpus is None else corpus)
    tok = Tokenizer(models.BPE(unk_token=None))
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
                         if split_digits else byte_level)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(EXTRA_TOKENS), special_tokens=RESERVED, min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    learned = tok.get_vocab_size(with_added_tokens=True)
    if learned != vocab_size - len(EXTRA_TOKENS):
        raise ValueError(f"corpus too small: learned {learned} ids, need {vocab_size - len(EXTRA_TOKENS)}")
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in EXTRA_TOKENS])

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(_tokenizer_config(tok), indent=2) + "\n")
    (out / "chat_template.jinja").write_text(builtin_template(), encoding="utf-8")
    return out


def _tokenizer_config(tok: Tokenizer) -> dict:
    decoder = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "normalized": t.normalized,
                 "rstrip": t.rstrip, "single_word": t.single_word, "special": t.special}
        for i, t in sorted(tok.get_added_tokens_decoder().items())
    }
    return {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "<SPECIAL_12>",
        "unk_token": "<unk>",
        "pad_token": "<unk>",
        "add_bos_token": False,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": 131072,
        "added_tokens_decoder": decoder,
    }
