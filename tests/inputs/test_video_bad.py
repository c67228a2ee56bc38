"""Bad videos raise MediaError naming the input; run: pytest tests/inputs/test_video_bad.py"""
from __future__ import annotations

import io

import av
import numpy as np
import pytest

from nanovl.inputs.errors import MediaError
from nanovl.inputs.video import load_video, probe_video


def encode(codec="libx264", fmt="mp4", num_frames=5, size=(64, 48)):
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=25)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), 40 * i, np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def zero_mdat(data):
    """Keep the mp4 headers (sizes, codec setup) but zero every byte of the frame data."""
    data = bytearray(data)
    at = data.find(b"mdat")
    size = int.from_bytes(data[at - 4:at], "big")
    data[at + 4:at - 4 + size] = bytes(size - 8)
    return bytes(data)


def audio_only():
    buf = io.BytesIO()
    with av.open(buf, "w", format="wav") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in list(stream.encode(frame)) + list(stream.encode()):
            container.mux(packet)
    return buf.getvalue()


def _raises(fn, src, *words, **kw):
    with pytest.raises(MediaError) as info:
        fn(src, **kw)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_good_video_loads():
    # the fixtures below are broken copies of this one
    assert load_video(encode(), image_size=16).num_frames == 1


def test_no_frames():
    data = zero_mdat(encode())
    assert probe_video(data).num_frames == 5  # the headers still promise 5 frames
    _raises(load_video, data, "video bytes", "no decodable frames")
    _raises(load_video, data, "clip.mp4", name="clip.mp4")


@pytest.mark.parametrize("fn", [load_video, probe_video])
def test_corrupt_and_wrong_files(fn, tmp_path):
    _raises(fn, np.random.default_rng(0).bytes(4096), "video bytes", "not a readable video")
    _raises(fn, encode()[:300], "video bytes")  # cut before the moov box
    text = tmp_path / "notes.txt"
    text.write_text("not a video at all\n" * 20)
    _raises(fn, text, str(text))
    _raises(fn, audio_only(), "no video stream")
    _raises(fn, tmp_path / "missing.mp4", "missing.mp4", "no such file")
    _raises(fn, b"", "empty input")


def test_pixel_limit_checked_from_header():
    _raises(load_video, encode(), "64x48", "limit of 3000", max_pixels=3000)


def test_without_pyav_the_engine_imports_and_a_video_is_a_media_error():
    # the lent GPU's Python has no PyAV: image and text work (the GPU eval) must still import,
    # and a video must fail as a MediaError that says what to install, not as an ImportError
    import subprocess
    import sys
    code = ("import sys; sys.modules['av'] = None\n"
            "import nanovl.llm\n"
            "from nanovl.inputs.errors import MediaError\n"
            "from nanovl.inputs.video import probe_video\n"
            "try:\n    probe_video(b'\\x00' * 64, name='clip.mp4')\n"
            "except MediaError as e:\n    print('MediaError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "MediaError" in out.stdout and "pip install av" in out.stdout, out.stdout
