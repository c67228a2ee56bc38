"""Fixtures of the quantization tests: the bundled tiny model's FP8 copy made by `nanovl quantize`, and
small random VL / text-only checkpoints (plumbing only: their answers are noise)."""
from __future__ import annotations

from pathlib import Path

import pytest

from nanovl.llm import BUNDLED_MODEL


@pytest.fixture(scope="session")
def tiny_fp8(tmp_path_factory) -> Path:
    """`nanovl quantize nanovl/assets/tiny DST` with the default calibration (32 drawn requests)."""
    from nanovl.cli import main

    dst = tmp_path_factory.mktemp("quant") / "tiny-fp8"
    assert main(["quantize", str(BUNDLED_MODEL), str(dst)]) == 0
    return dst


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> Path:
    from nanovl.train.tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer(tmp_path_factory.mktemp("quant_tok") / "tok")


@pytest.fixture(scope="session")
def random_vl(tmp_path_factory, tokenizer_dir) -> Path:
    from nanovl.testing.random_checkpoint import write_random_vl_checkpoint

    return write_random_vl_checkpoint(tmp_path_factory.mktemp("quant_vl") / "vl", tokenizer_dir=tokenizer_dir,
                                      num_shards=2, overrides={"llm_config": {"vocab_size": 512}})


@pytest.fixture(scope="session")
def random_text(tmp_path_factory, tokenizer_dir) -> Path:
    from nanovl.testing.random_checkpoint import write_random_text_checkpoint

    return write_random_text_checkpoint(tmp_path_factory.mktemp("quant_text") / "lm", tokenizer_dir=tokenizer_dir,
                                        overrides={"vocab_size": 512})
