"""Cut the sampled frames of a long video into small lossless clips, one per segment.

Each clip holds only the frames the segment's prompt will show, already at the model's tile size,
on a uniform local clock (frame k at k * step seconds), encoded with FFV1 in Matroska (lossless,
so the model sees the same pixels as it would from the original file, up to uint8 rounding). The
video is decoded once, front to back, and each clip is emitted as soon as its last frame is seen,
so memory holds one segment's frames at a time.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, Sequence

import av
import numpy as np
import torch

from nanovl.inputs.errors import MediaError
from nanovl.inputs.image import resize_bicubic
from nanovl.inputs.video import display_rgb

# frame times are exact fractions; this absorbs float error in the sample times
_EPS = 1e-6
_TIME_BASE = Fraction(1, 1000)


@dataclass
class Clip:
    """One segment's frames as a video file in memory.

    Attributes:
        data: Matroska/FFV1 bytes; frame k sits at k * step seconds of the clip's own clock.
        start: media time (s) of the clip's first sample; add it to clip times to get media times.
        step: seconds between samples.
        num_samples: sample slots the clip spans (frames shown twice in a row are stored once).
    """

    data: bytes
    start: float
    step: float
    num_samples: int

    @property
    def end(self) -> float:
        return self.start + self.num_samples * self.step


def _to_tile(frame: av.VideoFrame, size: int) -> np.ndarray:
    """[size, size, 3] uint8: the frame resized the way the processor resizes video frames."""
    rgb = torch.from_numpy(display_rgb(frame)).permute(2, 0, 1)[None].float() / 255
    tile = resize_bicubic(rgb, size, size)[0]  # [3, size, size]
    return (tile * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy()


def _encode(tiles: list[tuple[int, np.ndarray]], step: float, num_samples: int, start: float) -> Clip:
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        stream = out.add_stream("ffv1", rate=Fraction(1 / step).limit_denominator(1000))
        stream.width = stream.height = tiles[0][1].shape[0]
        stream.pix_fmt = "bgr0"
        # the encoder keeps the frames' millisecond times (by default it counts in 1/rate units
        # and the muxer rounds its slots back to the nearest millisecond)
        stream.time_base = stream.codec_context.time_base = _TIME_BASE
        for slot, tile in tiles:
            frame = av.VideoFrame.from_ndarray(tile, format="rgb24").reformat(format="bgr0")
            # Matroska keeps milliseconds: rounding up put a frame just after its sample time
            # (0.667 s for 2/3), so resampling took the frame before it and the slot was lost
            frame.pts, frame.time_base = math.floor(slot * step * 1000 + 1e-6), _TIME_BASE
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return Clip(buf.getvalue(), start, step, num_samples)


def _decoded(container, stream) -> Iterator[tuple[float, av.VideoFrame]]:
    origin = stream.start_time or 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue
        for frame in frames:
            if frame.pts is not None:
                yield float((frame.pts - origin) * stream.time_base), frame


def cut_clips(path: str, times: Sequence[float], groups: Sequence[tuple[int, int]], size: int) -> Iterator[Clip]:
    """Yield one Clip per group of sample indices, in order.

    Args:
        path: the video file.
        times: the sample times of the whole video (uniform step, from `video.sample_times`).
        groups: (first, last) sample indices of each segment, contiguous and in order.
        size: tile side in pixels (the model's force_image_size).
    """
    step = times[1] - times[0] if len(times) > 1 else 1.0
    try:
        container = av.open(path)
    except av.FFmpegError as err:
        raise MediaError(path, f"not a readable video ({err})") from None
    with container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        frames = _decoded(container, stream)
        current = next(frames, None)
        if current is None:
            raise MediaError(path, "video has no decodable frames")
        upcoming = next(frames, None)
        for first, last in groups:
            tiles: list[tuple[int, np.ndarray]] = []
            shown = None
            for k in range(first, last + 1):
                # the frame on screen at the sample time: the last one starting at or before it
                while upcoming is not None and upcoming[0] <= times[k] + _EPS:
                    current, upcoming = upcoming, next(frames, None)
                if current is not shown:
                    tiles.append((k - first, _to_tile(current[1], size)))
                    shown = current
            yield _encode(tiles, step, last - first + 1, times[first])
