"""load_video / probe_video on synthetic PyAV videos whose frames encode their own index.

Run: pytest tests/inputs/test_video_load.py
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from nanovl.inputs import video as video_mod
from nanovl.inputs.image import CLIP_MEAN, CLIP_STD
from nanovl.inputs.video import load_video, probe_video, sample_times

W, H, BAR = 64, 48, 8  # 8 vertical bars of 8 pixels = the 8 bits of the frame index


def bar_frame(index):
    rgb = np.zeros((H, W, 3), np.uint8)
    for bit in range(8):
        if index >> bit & 1:
            rgb[:, bit * BAR:(bit + 1) * BAR] = 255
    return rgb


def write_video(path, num_frames, rate=25, gop=10):
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = W, H, "yuv420p", gop
        stream.codec_context.bit_rate = 2_000_000
        for i in range(num_frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(bar_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_video_with_audio(path):
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        sound = container.add_stream("aac", rate=16000)
        for i in range(25):
            for packet in stream.encode(av.VideoFrame.from_ndarray(bar_frame(i), format="rgb24")):
                container.mux(packet)
        for k in range(16):
            chunk = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp",
                                               layout="stereo")
            chunk.sample_rate, chunk.pts = 16000, k * 1024
            for packet in sound.encode(chunk):
                container.mux(packet)
        for s in (stream, sound):
            for packet in s.encode():
                container.mux(packet)
    return path


def decode_bars(pixel_values):
    """Read each tile's bar code back: un-normalise, threshold the middle of every bar."""
    x = pixel_values * torch.tensor(CLIP_STD).view(1, 3, 1, 1) + torch.tensor(CLIP_MEAN).view(1, 3, 1, 1)
    size = x.shape[-1]
    return [sum(int(x[k, :, size // 2, int((b + 0.5) * size / 8)].mean() > 0.5) << b for b in range(8))
            for k in range(x.shape[0])]


@pytest.fixture(scope="module")
def ten_seconds(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "ten.mp4", 250)


def test_two_fps_indices_timestamps_and_pixels(ten_seconds):
    frames = load_video(ten_seconds, image_size=64)
    # samples at k * 0.5 s, k < 20; the frame on screen at t is floor(25 t)
    expected = [int(k * 0.5 * 25) for k in range(20)]
    assert expected[:4] == [0, 12, 25, 37]
    assert frames.frame_indices == expected
    assert decode_bars(frames.pixel_values) == expected
    assert frames.timestamps == pytest.approx([i / 25 for i in expected], abs=1e-9)
    assert frames.pixel_values.shape == (20, 3, 64, 64)
    assert frames.source_fps == 25.0 and frames.duration == pytest.approx(10.0)
    assert frames.name == str(ten_seconds)


def test_long_video_spread_evenly(ten_seconds):
    # 10 s > max_frames / fps = 4 s: step 10 / 8 = 1.25 s, frame floor(31.25 k)
    frames = load_video(ten_seconds, image_size=32, max_frames=8)
    expected = [0, 31, 62, 93, 125, 156, 187, 218]
    assert frames.frame_indices == expected
    assert decode_bars(frames.pixel_values) == expected
    assert frames.timestamps == pytest.approx([i / 25 for i in expected], abs=1e-9)


def test_seeking_matches_sequential_and_decodes_less(ten_seconds, monkeypatch):
    decoded = []
    original = video_mod._decoded

    def counting(container, stream):
        for frame in original(container, stream):
            decoded.append(frame.time)
            yield frame

    monkeypatch.setattr(video_mod, "_decoded", counting)
    monkeypatch.setattr(video_mod, "SEEK_GAP_S", 1e9)
    sequential = load_video(ten_seconds, image_size=32, max_frames=8)
    num_sequential, decoded[:] = len(decoded), []
    monkeypatch.setattr(video_mod, "SEEK_GAP_S", 0.5)
    seeking = load_video(ten_seconds, image_size=32, max_frames=8)
    assert seeking.frame_indices == sequential.frame_indices
    assert torch.equal(seeking.pixel_values, sequential.pixel_values)
    # keyframes every 10 frames: each seek decodes at most ~10 frames before its target
    assert num_sequential >= 219 and len(decoded) < num_sequential / 2


def test_slow_video_frames_not_repeated(tmp_path):
    # 1 fps source sampled at 2 fps: each source frame is on screen for two samples, kept once
    path = write_video(tmp_path / "slow.mp4", 4, rate=1)
    frames = load_video(path, image_size=32)
    assert frames.frame_indices == [0, 1, 2, 3]
    assert decode_bars(frames.pixel_values) == [0, 1, 2, 3]


def test_legacy_timestamps_drift_on_ntsc_rate(tmp_path):
    path = write_video(tmp_path / "ntsc.mp4", 90, rate=Fraction(30000, 1001))
    frames = load_video(path, image_size=32, fps=1.0)
    # 90 frames last 3.003 s; at t = 1, 2, 3 s the frames floor(29.97 t) = 29, 59, 89 show
    expected = [0, 29, 59, 89]
    assert frames.frame_indices == expected
    assert frames.timestamps == pytest.approx([i * 1001 / 30000 for i in expected], abs=1e-9)
    # int(1000 / 29.97) = 33 ms per frame: frame 89 is written 2.94 s, really at 2.97 s
    assert frames.legacy_timestamps() == pytest.approx([i * 0.033 for i in expected])
    assert f"{frames.legacy_timestamps()[3]:.2f}" == "2.94" and f"{frames.timestamps[3]:.2f}" == "2.97"


@pytest.mark.parametrize("seek_gap", [10.0, 0.5])
def test_raw_stream_without_timestamps(tmp_path, monkeypatch, seek_gap):
    # a raw H.264 stream has no duration, frame count or frame pts: all come from counting
    monkeypatch.setattr(video_mod, "SEEK_GAP_S", seek_gap)
    path = tmp_path / "raw.h264"
    with av.open(str(path), "w", format="h264") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(100):
            for packet in stream.encode(av.VideoFrame.from_ndarray(bar_frame(i), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    assert tuple(probe_video(path))[:3] == (4.0, 25.0, 100)
    frames = load_video(path, image_size=64)
    expected = [int(k * 0.5 * 25) for k in range(8)]
    assert frames.frame_indices == expected and decode_bars(frames.pixel_values) == expected
    assert frames.timestamps == pytest.approx([i / 25 for i in expected], abs=1e-9)


def test_probe(ten_seconds, tmp_path):
    assert tuple(probe_video(ten_seconds)) == (10.0, 25.0, 250, W, H, False)
    info = probe_video(write_video_with_audio(tmp_path / "sound.mp4"))
    assert info.has_audio and info.num_frames == 25 and (info.width, info.height) == (W, H)


def test_bytes_source_and_name(ten_seconds):
    frames = load_video(ten_seconds.read_bytes(), image_size=16, max_frames=2, name="video #1")
    assert frames.name == "video #1" and frames.frame_indices == [0, 125]


def test_sample_times():
    assert sample_times(10.0, 2.0, 128) == [k * 0.5 for k in range(20)]
    assert sample_times(100.0, 2.0, 4) == [0.0, 25.0, 50.0, 75.0]
    assert sample_times(0.3, 2.0, 128) == [0.0]
    assert sample_times(0.0, 2.0, 128) == [0.0]


def test_bad_arguments(ten_seconds):
    with pytest.raises(ValueError):
        load_video(ten_seconds, fps=0)
    with pytest.raises(ValueError):
        load_video(ten_seconds, max_frames=0)
