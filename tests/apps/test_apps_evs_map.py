"""EVS map: kept-token masks from the model's frame embeddings, the counts a prompt really pays, the PNG."""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from nanovl.apps.evs_map import compute_evs_map, draw_evs_map

SIZE = 128  # the tiny preset's tile: a 4 x 4 token raster, 32 px per token


@pytest.fixture(scope="module")
def square_video(tmp_path_factory):
    """Six frames at 2 fps (lossless): grey, then from frame 3 a white square in token (0, 0)."""
    path = tmp_path_factory.mktemp("evs") / "square.mkv"
    with av.open(str(path), "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=2)
        stream.width = stream.height = SIZE
        stream.pix_fmt = "bgr0"
        for i in range(6):
            rgb = np.full((SIZE, SIZE, 3), 90, np.uint8)
            if i >= 3:
                rgb[4:28, 4:28] = 255
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="bgr0")
            frame.pts, frame.time_base = i, Fraction(1, 2)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return str(path)


def test_mask_keeps_first_frame_and_the_change(random_llm, square_video):
    evs = compute_evs_map(random_llm, square_video, pruning_rate=0.7, fps=2.0)
    assert evs.mask.shape == (6, 4, 4) and evs.frames.shape == (6, SIZE, SIZE, 3)
    assert evs.timestamps == [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    assert evs.tokens_without_evs == 96
    assert evs.tokens_with_evs == random_llm.video_token_count(6, 0.7) == 28
    assert evs.mask[0].all()
    # the square appears in token (0, 0) of frame 3: the most changed token of the video
    assert evs.mask[3, 0, 0]
    assert evs.mask[3].sum() == evs.mask[1:].sum(axis=(1, 2)).max()
    # the frames are the model's view of the video: the square's pixels are white from frame 3
    assert evs.frames[3, 10, 10].min() > 240 and evs.frames[2, 10, 10].max() < 110


def test_counts_match_what_a_prompt_costs(random_llm, square_video):
    evs = compute_evs_map(random_llm, square_video, pruning_rate=0.7, fps=2.0)

    def prompt_tokens(q):
        part = {"type": "video", "video": square_video, "fps": 2.0, "video_pruning_rate": q}
        return random_llm.count_tokens([{"role": "user", "content": [part]}])

    assert prompt_tokens(0.0) - prompt_tokens(0.7) == evs.tokens_without_evs - evs.tokens_with_evs
    text = evs.summary()
    assert "without EVS: 96" in text and "with EVS:    28" in text


def test_draw_evs_map_png(random_llm, square_video, tmp_path):
    evs = compute_evs_map(random_llm, square_video, pruning_rate=0.5, fps=2.0)
    out = tmp_path / "map.png"
    draw_evs_map(evs, str(out), max_cols=3)
    img = Image.open(out)
    assert img.format == "PNG" and img.size[0] > img.size[1] * 0.8  # 3 columns x 2 rows
