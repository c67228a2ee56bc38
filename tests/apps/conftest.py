"""Fixtures of the workflow tests: a tiny random VL model (plumbing) and the trained tiny model (content)."""
from __future__ import annotations

import pytest

from nanovl.llm import BUNDLED_MODEL


@pytest.fixture(scope="session")
def random_llm(tmp_path_factory):
    """LLM over a random tiny VL checkpoint with the tiny tokenizer: right shapes, meaningless answers."""
    from nanovl.llm import LLM
    from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
    from nanovl.train.tokenizer import build_tiny_tokenizer

    root = tmp_path_factory.mktemp("random_vl")
    tok = build_tiny_tokenizer(root / "tokenizer")
    ckpt = write_random_vl_checkpoint(root / "ckpt", tokenizer_dir=tok, overrides={"llm_config": {"vocab_size": 512}})
    return LLM(str(ckpt))


@pytest.fixture(scope="session")
def trained_llm():
    """The bundled trained tiny model; tests of answer content skip without it."""
    if not (BUNDLED_MODEL / "config.json").is_file():
        pytest.skip(f"the trained tiny model is not at {BUNDLED_MODEL} yet (answer content needs it)")
    from nanovl.llm import LLM

    return LLM()
