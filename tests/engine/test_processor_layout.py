"""Processor: the token ids of a chat with an image and a video equal the tokenized prompt text
written out by hand in the SPEC form (`<img>` + `<image>` * n + `</img>`, "Frame i sampled at t
seconds: " per frame).

Run: pytest tests/engine/test_processor_layout.py
"""
from __future__ import annotations

import av
import numpy as np
import pytest
from PIL import Image

from nanovl.config import config_from_hf
from nanovl.model.loader import read_config
from nanovl.processor import Processor
from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer


def write_video(path, num_frames: int = 4, rate: int = 2):
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(num_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_processor")
    tok_dir = build_tiny_tokenizer(root / "tok")
    ckpt = write_random_vl_checkpoint(root / "ckpt", tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})
    tok = Tokenizer.from_dir(ckpt)
    proc = Processor(tok, config_from_hf(read_config(ckpt)), max_num_tiles=3, video_pruning_rate=0.0)
    return tok, proc, write_video(root / "clip.mp4")


@pytest.mark.parametrize("thinking", [None, False])
def test_image_and_video_prompt_ids_equal_spec_text(setup, thinking):
    tok, proc, video = setup
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (90, 200, 3), dtype=np.uint8))
    msgs = [{"role": "system", "content": "Be short."},
            {"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "And this:"},
                                         {"type": "video_url", "video_url": {"url": video.as_uri()}, "fps": 2}]}]
    out = proc.process_chat(msgs, enable_thinking=thinking)
    image, clip = out.mm_input.items
    n = proc.tokens_per_tile
    assert image.pixel_values.shape[0] > 1 and len(clip.timestamps) == 4
    frames = "\n".join(f"Frame {i + 1} sampled at {t:.2f} seconds: <img>" + "<image>" * n + "</img>"
                       for i, t in enumerate(clip.timestamps))
    text = ("<SPECIAL_10>System\nBe short.\n<SPECIAL_11>User\n"
            "<img>" + "<image>" * (n * image.pixel_values.shape[0]) + "</img>\n" + frames + "\nAnd this:\n"
            "<SPECIAL_11>Assistant\n" + ("<think></think>" if thinking is False else "<think>\n"))
    assert out.prompt_token_ids == tok.encode(text)
    assert out.enable_thinking is (thinking is None)
    # each item's span is where the processor says it is
    for item in (image, clip):
        assert out.prompt_token_ids[item.offset:item.end] == out.mm_input.span_ids(item)


@pytest.mark.parametrize("part,match", [
    ({"type": "image", "max_num_tiles": 100000}, "max_num_tiles must be an integer from 1 to 128"),
    ({"type": "image", "max_num_tiles": True}, "max_num_tiles"),
    ({"type": "video", "max_frames": 10 ** 6}, "max_frames must be an integer from 1 to 1024"),
    ({"type": "video", "fps": [1]}, "fps must be a number"),
    ({"type": "video", "fps": {}}, "fps must be a number"),
    ({"type": "video", "video_pruning_rate": [0.5]}, "video_pruning_rate must be a number"),
    ({"type": "video", "video_pruning_rate": "lots"}, "video_pruning_rate must be a number"),
], ids=["tiles-huge", "tiles-bool", "frames-huge", "fps-list", "fps-dict", "q-list", "q-word"])
def test_media_options_out_of_range_or_of_the_wrong_type_are_refused(setup, part, match):
    # a request's options are refused before any cost: a huge tile budget walked max_tiles^2 grid
    # candidates in Python (minutes at 100000), a list where a number belongs raised a TypeError (500)
    from nanovl.errors import InvalidRequestError

    _, proc, video = setup
    img = Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8))
    kind = part["type"]
    media = {"type": kind, kind: img if kind == "image" else str(video), **{k: v for k, v in part.items() if k != "type"}}
    with pytest.raises(InvalidRequestError, match=match):
        proc.process_chat([{"role": "user", "content": [media, {"type": "text", "text": "x"}]}])


def test_numeric_strings_still_set_video_options(setup):
    _, proc, video = setup
    out = proc.process_chat([{"role": "user", "content": [{"type": "video", "video": str(video), "fps": "1",
                                                           "video_pruning_rate": None}]}])
    [clip] = out.mm_input.items
    assert len(clip.timestamps) == 2 and clip.pruning_rate == 0.0  # 4 frames at 2 fps, sampled at 1 fps
