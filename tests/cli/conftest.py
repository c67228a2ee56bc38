"""Fixtures of the CLI tests: a random tiny VL checkpoint (plumbing only; answers are noise) and media files."""
from __future__ import annotations

import pytest
from helpers import write_gray_mp4


@pytest.fixture(scope="session")
def ckpt(tmp_path_factory) -> str:
    from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
    from nanovl.train.tokenizer import build_tiny_tokenizer

    root = tmp_path_factory.mktemp("cli_tiny")
    tok = build_tiny_tokenizer(root / "tok")
    return str(write_random_vl_checkpoint(root / "tiny-cli", tokenizer_dir=tok,
                                          overrides={"llm_config": {"vocab_size": 512}}))


@pytest.fixture(scope="session")
def media(tmp_path_factory) -> dict[str, str]:
    """{"image": a 32x32 PNG, "video": an 8-frame mp4, "broken": a file that is no image}."""
    from PIL import Image

    root = tmp_path_factory.mktemp("cli_media")
    Image.new("RGB", (32, 32), (10, 200, 90)).save(root / "pic.png")
    write_gray_mp4(root / "clip.mp4", 8, 30)
    (root / "broken.png").write_bytes(b"definitely not a png")
    return {"image": str(root / "pic.png"), "video": str(root / "clip.mp4"), "broken": str(root / "broken.png")}
