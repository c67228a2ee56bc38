"""Audio decoding: the audio stream of any file PyAV reads -> mono float32 samples at one rate.

Times are on video.py's clock: seconds from the start of the file's video stream (from the
audio stream's own start when there is no video), so speech and frames of one file line up.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np

from nanovl.inputs.errors import MediaError
from nanovl.inputs.image import MediaSource, as_file, media_name


@dataclass(frozen=True)
class AudioClip:
    """Mono audio samples and where they sit on the media clock.

    Attributes:
        samples: [N] float32 in [-1, 1].
        sample_rate: samples per second.
        name: file name (or "audio bytes") for messages.
        start: media time of samples[0] in seconds; non-zero when cut with `load_audio(start=...)`.
    """

    samples: np.ndarray
    sample_rate: int
    name: str = "audio samples"
    start: float = 0.0

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate

    @property
    def end(self) -> float:
        """Media time just after the last sample, in seconds."""
        return self.start + self.duration


def _open(src: MediaSource, name: str):
    try:
        return av.open(as_file(src, name), mode="r")
    except av.FFmpegError as e:
        raise MediaError(name, f"not a readable media file ({type(e).__name__}: {e})") from None


def has_audio(src: MediaSource, *, name: str | None = None) -> bool:
    """True when the media file has at least one audio stream.

    Raises:
        MediaError naming the input when it is missing or not a media file PyAV can open.
    """
    with _open(src, name or media_name(src, "audio")) as container:
        return len(container.streams.audio) > 0


def load_audio(src: MediaSource, *, sample_rate: int = 16000, start: float | None = None,
               end: float | None = None, name: str | None = None) -> AudioClip:
    """Decode the first audio stream of `src` to mono float32 at `sample_rate`.

    Args:
        src: path, bytes or data URI of any container PyAV reads (wav, mp3, ogg, m4a, mp4, mkv).
        sample_rate: output rate in Hz (16000 is what Whisper expects).
        start: media time in seconds to cut from (None = time 0, or the first sample if later).
        end: media time in seconds to cut to (None = end of stream).
        name: what error messages call the input (default: its path, or "audio bytes").
    Returns:
        AudioClip with samples [N] float32 and `clip.start` = the media time of the first sample.
    Raises:
        MediaError naming the input: missing, unreadable, no audio stream, empty range.
    """
    name = name or media_name(src, "audio")
    if start is not None and end is not None and end <= start:
        raise MediaError(name, f"end ({end}) must be after start ({start})")
    with _open(src, name) as container:
        if not container.streams.audio:
            raise MediaError(name, "no audio stream")
        try:
            samples, t0 = _decode(container, sample_rate, start, end)
        except av.FFmpegError as e:
            raise MediaError(name, f"corrupt audio stream ({type(e).__name__}: {e})") from None
    # audio that plays before the first video frame has no place on the frame clock
    start = max(t0, 0.0) if start is None else max(t0, start)
    clip = _cut(samples, t0, sample_rate, start, end)
    if len(clip) == 0:
        raise MediaError(name, f"no audio samples in the requested range [{start}, {end}]")
    return AudioClip(clip, sample_rate, name=os.path.basename(name), start=start)


def _origin(container, stream) -> float:
    """Time zero of the file's clock in seconds: the video stream's start, as video.py uses."""
    ref = container.streams.video[0] if container.streams.video else stream
    return float((ref.start_time or 0) * ref.time_base)


def _decode(container, sample_rate: int, start: float | None,
            end: float | None) -> tuple[np.ndarray, float]:
    """Decode + resample frames covering [start, end]; returns samples and the time of samples[0]."""
    stream = container.streams.audio[0]
    origin = _origin(container, stream)
    if start:
        # seek lands on a frame at or before `start`; _cut trims the rest sample-exactly
        container.seek(int((start + origin) / stream.time_base), stream=stream)
    # channels are resampled as they are and averaged here: swresample's own mono downmix adds
    # them at -3 dB each, which puts identical stereo channels at 1.41x, past [-1, 1]
    resampler = av.AudioResampler(format="fltp", rate=sample_rate)
    chunks, t0 = [], None
    for frame in container.decode(stream):
        if frame.pts is not None:
            t = float(frame.pts * frame.time_base) - origin
            if t0 is None:
                t0 = t
            if end is not None and t > end:
                break
        chunks += [out.to_ndarray().mean(axis=0) for out in resampler.resample(frame)]  # [C, n] -> [n]
    chunks += [out.to_ndarray().mean(axis=0) for out in resampler.resample(None)]
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return samples.astype(np.float32, copy=False), (t0 or 0.0)


def _cut(samples: np.ndarray, t0: float, sample_rate: int, start: float,
         end: float | None) -> np.ndarray:
    lo = max(0, round((start - t0) * sample_rate))
    hi = len(samples) if end is None else max(lo, round((end - t0) * sample_rate))
    return samples[lo:hi]


def resample_clip(clip: AudioClip, sample_rate: int) -> AudioClip:
    """The same clip at another sample rate (libswresample); returns `clip` if the rate matches."""
    if clip.sample_rate == sample_rate:
        return clip
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(clip.samples, dtype=np.float32)[None], format="flt", layout="mono")
    frame.sample_rate = clip.sample_rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    out = [f.to_ndarray().reshape(-1) for f in resampler.resample(frame) + resampler.resample(None)]
    samples = np.concatenate(out) if out else np.zeros(0, np.float32)
    return AudioClip(samples.astype(np.float32, copy=False), sample_rate, clip.name, clip.start)
