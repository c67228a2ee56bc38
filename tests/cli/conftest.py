"""Fixtures of the CLI tests: a random tiny VL checkpoint (plumbing only; answers are noise) and media files."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest


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
    import av
    from PIL import Image

    root = tmp_path_factory.mktemp("cli_media")
    Image.new("RGB", (32, 32), (10, 200, 90)).save(root / "pic.png")
    with av.open(str(root / "clip.mp4"), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=4)
        stream.width = stream.height = 32
        stream.pix_fmt, stream.time_base = "yuv420p", Fraction(1, 4)
        for i in range(8):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 30 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    (root / "broken.png").write_bytes(b"definitely not a png")
    return {"image": str(root / "pic.png"), "video": str(root / "clip.mp4"), "broken": str(root / "broken.png")}
