"""Videos -> sampled frames as one normalised tile each, with their times (SPEC Part E).

Frames are sampled at `fps` (default 2) up to `max_frames` (default 128); a longer video is
spread evenly: sample k is the frame on screen at time k * max(1/fps, duration/max_frames).
Only the chosen frames are converted to RGB; a far-ahead sample is reached by seeking to the
keyframe before it rather than decoding everything in between.
"""
from __future__ import annotations

import io
import math
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterator, NamedTuple, Optional, Sequence, Union

import numpy as np
import torch

from nanovl.inputs.errors import MediaError
from nanovl.inputs.image import (CLIP_MEAN, CLIP_STD, DEFAULT_MAX_PIXELS, MediaSource, as_file,
                                 media_name, normalize_, resize_bicubic)

try:
    import av
    _FFmpegError = av.FFmpegError
except ImportError:  # images and text work without PyAV (the lent GPU's image lacks it)
    av = None
    _FFmpegError = ()  # an empty tuple: `except` catches nothing

DEFAULT_FPS = 2.0
DEFAULT_MAX_FRAMES = 128
# seek instead of decoding forward when the next sample is this far ahead (x264's default
# keyframe interval is 10 s at 25 fps, so a shorter gap would mostly land on the same keyframe)
SEEK_GAP_S = 10.0
# frame times are exact fractions; this only absorbs float error in the sample times
_EPS = 1e-6


class VideoInfo(NamedTuple):
    """Container metadata of a video; `probe_video` reads it without decoding pixels."""

    duration: float
    fps: float
    num_frames: int
    width: int
    height: int
    has_audio: bool


@dataclass
class VideoFrames:
    """Sampled frames of one video.

    `timestamps` are the frames' real presentation times (pts * time_base, from the start of
    the stream) and are what the prompt writes (SPEC Part K.1). `legacy_timestamps()` gives the
    vLLM/sglang form frame_index * int(1000 / fps) / 1000, which drifts on long videos.
    """

    pixel_values: torch.Tensor  # [F, 3, S, S] float32, normalised
    timestamps: list[float]  # seconds
    frame_indices: list[int]  # index into the original video: round(time * source_fps)
    source_fps: float
    duration: float  # seconds
    name: str

    @property
    def num_frames(self) -> int:
        return len(self.frame_indices)

    def legacy_timestamps(self) -> list[float]:
        step_ms = int(1000 / self.source_fps)
        return [i * step_ms / 1000 for i in self.frame_indices]


class _Frame(NamedTuple):
    time: float
    frame: av.VideoFrame


def probe_video(src: MediaSource, *, name: str | None = None) -> VideoInfo:
    """Duration (s), fps, frame count, size and audio presence, from the container headers.

    Raises:
        MediaError naming the input when it is not a readable video.
    """
    name = name or media_name(src, "video")
    return _probe(as_file(src, name), name)


def load_video(src: MediaSource, *, fps: float = DEFAULT_FPS, max_frames: int = DEFAULT_MAX_FRAMES,
               image_size: int = 512, mean: Sequence[float] = CLIP_MEAN,
               std: Sequence[float] = CLIP_STD, max_pixels: int = DEFAULT_MAX_PIXELS,
               name: str | None = None) -> VideoFrames:
    """Decode and sample a video; each frame resized straight to image_size^2 (aspect dropped).

    Frames shown at the same instant are kept once, so a video slower than `fps` gives fewer
    frames than samples.

    Returns:
        VideoFrames with pixel_values [F, 3, image_size, image_size], 1 <= F <= max_frames.
    Raises:
        MediaError naming the input: unreadable, corrupt, no video stream, no frames,
        frame size over `max_pixels`. ValueError for fps <= 0 or max_frames < 1.
    """
    check_sampling(fps, max_frames)
    name = name or media_name(src, "video")
    fp = as_file(src, name)
    info = _probe(fp, name)
    if info.width * info.height > max_pixels:
        raise MediaError(name, f"frame size {info.width}x{info.height} is more than the limit "
                               f"of {max_pixels} pixels")
    times = sample_times(info.duration, fps, max_frames)
    tiles, stamps = [], []
    with _guard(name), _open(fp, name) as container:
        # each chosen frame is converted at once, so only one decoded frame is held
        for pick in _pick_frames(container, _video_stream(container, name), times):
            tiles.append(_frame_to_tile(pick.frame, image_size))
            # edit lists can put the first frame slightly before the stream start
            stamps.append(max(0.0, pick.time))
    if not tiles:
        raise MediaError(name, "video has no decodable frames")
    return VideoFrames(
        pixel_values=normalize_(torch.cat(tiles), mean, std),
        timestamps=stamps, frame_indices=[round(t * info.fps) for t in stamps],
        source_fps=info.fps, duration=info.duration, name=name)


def sample_times(duration: float, fps: float, max_frames: int) -> list[float]:
    """Sample times k * step, step = max(1/fps, duration/max_frames), for k*step < duration.

    Returns:
        1..max_frames times in seconds (just [0.0] when the duration is unknown or 0).
    Raises:
        ValueError unless fps is a finite number > 0 and max_frames >= 1.
    """
    check_sampling(fps, max_frames)
    step = max(1.0 / fps, duration / max_frames)
    times = [k * step for k in range(max_frames) if k * step < duration - _EPS]
    return times or [0.0]


def check_sampling(fps: float, max_frames: int) -> None:
    """Raise ValueError, worded for the user, unless fps is a finite number > 0 and max_frames >= 1."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"video fps must be a finite number > 0, got {fps}")
    if max_frames < 1:
        raise ValueError(f"video max_frames must be >= 1, got {max_frames}")


@contextmanager
def _guard(name: str) -> Iterator[None]:
    # PyAV errors subclass OSError/ValueError; none may leak out as anything but MediaError
    try:
        yield
    except _FFmpegError as e:
        raise MediaError(name, f"corrupt or unreadable video ({type(e).__name__}: {e})") from None


def _open(fp: Union[str, io.BytesIO], name: str):
    if av is None:
        raise MediaError(name, "reading videos needs PyAV: pip install av")
    if isinstance(fp, io.BytesIO):
        fp.seek(0)
    try:
        return av.open(fp, mode="r")
    except Exception as e:
        raise MediaError(name, f"not a readable video ({type(e).__name__}: {e})") from None


def _probe(fp: Union[str, io.BytesIO], name: str) -> VideoInfo:
    with _guard(name), _open(fp, name) as container:
        info = _info(container, _video_stream(container, name), name)
    # the display matrix is read off a decoded frame (PyAV exposes no stream getter); a phone's
    # portrait clip is stored landscape and shown turned a quarter
    if _quarter_turns(_first_frame(fp, name)) % 2:
        info = info._replace(width=info.height, height=info.width)
    return info


def _first_frame(fp: Union[str, io.BytesIO], name: str) -> Optional["av.VideoFrame"]:
    with _guard(name), _open(fp, name) as container:
        return next(_decode_packets(container, _video_stream(container, name)), None)


def _quarter_turns(frame: Optional["av.VideoFrame"]) -> int:
    """Counterclockwise quarter turns that show `frame` upright (its display matrix's rotation)."""
    return round((getattr(frame, "rotation", 0) or 0) / 90) % 4


def display_rgb(frame: "av.VideoFrame") -> np.ndarray:
    """[H, W, 3] uint8 as a player shows the frame: its display-matrix rotation applied."""
    rgb = frame.to_ndarray(format="rgb24")
    turns = _quarter_turns(frame)
    return np.ascontiguousarray(np.rot90(rgb, turns) if turns else rgb)


def _video_stream(container, name: str):
    if not container.streams.video:
        raise MediaError(name, "no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:
        raise MediaError(name, "unknown or unsupported video codec")
    stream.thread_type = "AUTO"
    return stream


def _info(container, stream, name: str) -> VideoInfo:
    ctx = stream.codec_context
    width, height = ctx.width or stream.width, ctx.height or stream.height
    if not width or not height:
        raise MediaError(name, f"empty video frame size ({width}x{height})")
    if stream.duration:
        duration = float(stream.duration * stream.time_base)
    elif container.duration:
        # the container's span starts at its earliest stream (Matroska: often the audio), while
        # frame times count from this stream's own start
        late = 0.0
        if stream.start_time is not None and container.start_time is not None:
            late = float(stream.start_time * stream.time_base) - container.start_time / av.time_base
        duration = max(container.duration / av.time_base - max(late, 0.0), 0.0)
    else:
        duration = 0.0
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    num_frames = stream.frames
    if not duration or not rate:
        # headers lack timing (raw streams, some live recordings): count packets instead
        num_frames, duration = _scan_packets(container, stream, duration, rate)
    fps = float(rate) if rate else (num_frames / duration if duration > 0 and num_frames else 1.0)
    num_frames = num_frames or round(duration * fps)
    return VideoInfo(duration, fps, int(num_frames), int(width), int(height),
                     bool(container.streams.audio))


def _scan_packets(container, stream, duration: float, rate) -> tuple[int, float]:
    """Packet count and end time by demuxing only (no decode); consumes the container."""
    count, end = 0, 0.0
    start = stream.start_time or 0
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        count += 1
        if packet.pts is not None:
            end = max(end, float((packet.pts - start + (packet.duration or 0)) * stream.time_base))
    if not end and rate:
        end = count / float(rate)
    return count, duration or end


def _decoded(container, stream) -> Iterator[_Frame]:
    """Frames in presentation order with exact times relative to the stream start."""
    start = stream.start_time or 0
    interval = 1.0 / float(stream.average_rate or 25)
    anchor, num_since = 0.0, -1  # last frame with a timestamp, frames decoded after it
    for frame in _decode_packets(container, stream):
        if frame.pts is None:
            # no timestamp at all (raw streams): nominal frame intervals after the last one
            num_since += 1
            time = anchor + num_since * interval
        else:
            time = float(Fraction(frame.pts - start) * stream.time_base)
            anchor, num_since = time, 0
        yield _Frame(time, frame)


def _decode_packets(container, stream) -> Iterator[av.VideoFrame]:
    # a damaged packet is skipped, as players do, instead of failing the whole video; the
    # empty packet demux yields last flushes the decoder
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except _FFmpegError:
            continue
        yield from frames


def _pick_frames(container, stream, times: list[float]) -> Iterator[_Frame]:
    """For each sample time the last frame with time <= t (the first frame before it starts).

    A frame chosen for two sample times is yielded once.
    """
    frames = _decoded(container, stream)
    prev: Optional[_Frame] = None
    ahead: Optional[_Frame] = None
    last_time: Optional[float] = None
    can_seek = True
    for t in times:
        last = ahead or prev
        position = last.time if last else 0.0
        # frames without timestamps are timed by counting, which a seek would break
        timed = last is not None and last.frame.pts is not None
        if can_seek and timed and t - position > SEEK_GAP_S:
            try:
                container.seek(int((stream.start_time or 0) + t / stream.time_base), stream=stream)
            except _FFmpegError:
                can_seek = False
            else:
                frames, prev = _decoded(container, stream), None
                ahead = next(frames, None)
                # landing at or before where we already were: keyframes are sparse and seeking
                # only re-decodes, so decode straight through from here on
                can_seek = ahead is not None and ahead.time > position
        while True:
            cand, ahead = (ahead, None) if ahead else (next(frames, None), None)
            if cand is None:
                break
            if cand.time <= t + _EPS:
                prev = cand
            else:
                ahead = cand
                break
        chosen = prev or ahead
        if chosen is None:
            return
        if chosen.time != last_time:
            last_time = chosen.time
            yield chosen


def _frame_to_tile(frame: av.VideoFrame, image_size: int) -> torch.Tensor:
    """Decoded frame -> [1, 3, S, S] floats in [0, 1]."""
    rgb = display_rgb(frame)  # [H, W, 3] uint8
    x = torch.from_numpy(rgb).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)
    return resize_bicubic(x, image_size, image_size)
