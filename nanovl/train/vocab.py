"""The shipped tiny model's tokenizer: `build_tiny_tokenizer` trained on the curriculum's own text.

The corpus is the prompts and targets of a few hundred generator samples per task (questions,
JSON answers, traces, frame and speech lines), plus the tokenizer's built-in English/JSON corpus,
so the ~1k-token vocabulary spends its merges on what the model actually reads and writes.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from nanovl.train.dataset import prompt_text
from nanovl.train.samples import completion_text, draw_sample
from nanovl.train.tokenizer import _builtin_corpus, build_tiny_tokenizer

DEFAULT_VOCAB = 1024
# corpus seeds sit far from the training (0..) and held-out (1e9 + ..) seeds; only text is used
_CORPUS_SEED = 777 << 32


def curriculum_corpus(n_per_stage: int = 300) -> list[str]:
    """Prompt + completion text of `n_per_stage` samples of each curriculum stage."""
    lines = []
    for stage in (1, 2):
        for i in range(n_per_stage):
            ts = draw_sample(_CORPUS_SEED + stage * 100_000 + i, stage)
            lines.append(prompt_text(ts) + completion_text(ts) + "<SPECIAL_12>")
    rng = random.Random(7)
    # money and dates in every printed form, so digit merges are not left to chance
    for _ in range(300):
        cents = rng.randint(50, 99999)
        lines.append(f"{cents // 100}.{cents % 100:02d} {rng.randint(1, 9)} x {rng.randint(1, 99)}.00")
    return lines


def build_curriculum_tokenizer(out_dir: str | Path, *, vocab_size: int = DEFAULT_VOCAB,
                               n_per_stage: int = 300, split_digits: bool = False) -> Path:
    """Write tokenizer.json, tokenizer_config.json and chat_template.jinja into `out_dir`.

    split_digits: one token per digit (see `build_tiny_tokenizer`); v1 and v2 merged digit pairs.
    """
    corpus = curriculum_corpus(n_per_stage) + _builtin_corpus()
    return build_tiny_tokenizer(out_dir, vocab_size=vocab_size, corpus=corpus, split_digits=split_digits)


def splits_digits(tok_dir: str | Path) -> bool:
    """Whether the tokenizer in `tok_dir` gives every digit its own token (built with split_digits)."""
    pre = json.loads((Path(tok_dir) / "tokenizer.json").read_text()).get("pre_tokenizer") or {}
    parts = pre.get("pretokenizers", [pre]) if pre.get("type") == "Sequence" else [pre]
    return any(p.get("type") == "Digits" and p.get("individual_digits") for p in parts)
