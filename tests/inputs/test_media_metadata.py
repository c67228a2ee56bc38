"""Container metadata the frames and samples must honour: a phone video's display rotation, a
Matroska video stream that starts after its audio, and a stereo track's level after downmixing.

Run: pytest tests/inputs/test_media_metadata.py
"""
from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest

from nanovl.inputs.audio import load_audio
from nanovl.inputs.video import load_video, probe_video


def _write_video(path, *, rotation: int | None = None, video_start: float = 0.0, audio: bool = False,
                 fmt: str | None = None, num_frames: int = 10, rate: int = 10) -> str:
    """64x32 frames, red on the left half and blue on the right; optional display rotation,
    a late video start and a 0.3-amplitude stereo tone from time 0."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        sound = container.add_stream("aac", rate=16000, layout="stereo") if audio else None
        img = np.zeros((32, 64, 3), np.uint8)
        img[:, :32, 0] = 255
        img[:, 32:, 2] = 255
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = round((video_start + i / rate) * 1000), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
        if sound is not None:
            t = np.arange(16000 * num_frames // rate) / 16000
            tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for k in range(0, len(tone), 1024):
                chunk = np.ascontiguousarray(np.stack([tone[k:k + 1024]] * 2))
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                frame.sample_rate, frame.pts, frame.time_base = 16000, k, Fraction(1, 16000)
                for packet in sound.encode(frame):
                    container.mux(packet)
            for packet in sound.encode():
                container.mux(packet)
    return str(path)


def _red(path) -> np.ndarray:
    """The first frame's red channel as an 8x8 tile, in [0, 1]."""
    return load_video(path, image_size=8, mean=(0, 0, 0), std=(1, 1, 1)).pixel_values[0, 0].numpy()


@pytest.mark.parametrize("rotation, red_side", [(None, "left"), (90, "bottom"), (-90, "top"), (180, "right")])
def test_frames_are_shown_as_the_display_matrix_turns_them(tmp_path, rotation, red_side):
    # a display rotation of +90 turns the picture a quarter counterclockwise, as players show it
    red = _red(_write_video(tmp_path / "clip.mp4", rotation=rotation))
    halves = {"left": red[:, :4], "right": red[:, 4:], "top": red[:4], "bottom": red[4:]}
    other = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}[red_side]
    assert halves[red_side].mean() > 0.9 and halves[other].mean() < 0.1, red.round(1)


@pytest.mark.parametrize("rotation, size", [(None, (64, 32)), (90, (32, 64)), (-90, (32, 64)), (180, (64, 32))])
def test_probe_gives_the_displayed_size(tmp_path, rotation, size):
    info = probe_video(_write_video(tmp_path / "clip.mp4", rotation=rotation))
    assert (info.width, info.height) == size


def test_matroska_duration_counts_from_the_video_stream_start(tmp_path):
    # Matroska gives no stream duration; the container's runs from the audio's start at 0, 1.5 s
    # before the first frame, so the video read 4.5 s long and its last samples all fell on one frame
    path = _write_video(tmp_path / "late.mkv", video_start=1.5, audio=True, fmt="matroska", num_frames=30)
    info = probe_video(path)
    assert info.duration == pytest.approx(3.0, abs=0.11) and info.num_frames == 30
    stamps = load_video(path, image_size=8).timestamps
    assert stamps == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0, 2.5]) and len(set(stamps)) == len(stamps)


def test_stereo_downmix_keeps_the_level(tmp_path):
    # swresample's mono downmix adds the two channels at -3 dB each: a 0.3 tone came out at 0.42,
    # and a loud one past the documented [-1, 1]
    clip = load_audio(_write_video(tmp_path / "tone.mp4", audio=True))
    peak = float(np.abs(clip.samples[len(clip.samples) // 4:]).max())
    assert peak == pytest.approx(0.3, abs=0.03)
