"""Synthetic speech: espeak-ng utterances, compressed audio files, and narrated test videos.

Regenerate the committed fixtures with
`python -c "from nanovl.train.speech import write_speech_fixtures; write_speech_fixtures()"`.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from nanovl.inputs.audio import load_audio

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "assets" / "speech"

# voice and speed picked by transcribing test sentences with Whisper tiny.en: the default "en"
# voice at 175 wpm is often misheard ("seven green apples" -> "seven three apple"), "en-us+f3"
# at 130 wpm got those sentences right
DEFAULT_VOICE = "en-us+f3"
DEFAULT_RATE = 130

# (file stem, [(text, silence before it in seconds), ...]); sentences picked because tiny.en
# gets every word right across bit rates and offsets, and without digits so the expected words
# do not depend on how the recogniser writes numbers
FIXTURES = (
    ("noon", [("The meeting starts at noon.", 0.5)]),
    ("kitchen", [("Open the window in the kitchen.", 0.3)]),
    ("orange", [("My favorite color is orange.", 0.8)]),
    ("corner", [("Turn left at the next corner.", 0.5),
                ("We will meet again tomorrow morning.", 2.0)]),
)


def synthesize_speech(text: str, *, voice: str = DEFAULT_VOICE, rate: int = DEFAULT_RATE,
                      sample_rate: int = 16000) -> np.ndarray:
    """Speak `text` with espeak-ng.

    Args:
        text: what to say (plain text, passed on stdin so a leading "-" is not an option).
        voice: espeak-ng voice name, e.g. "en", "en-us+f3".
        rate: speed in words per minute.
        sample_rate: output rate in Hz (espeak-ng renders 22050 Hz; we resample).
    Returns:
        [N] float32 mono samples in [-1, 1].
    Raises:
        RuntimeError: espeak-ng is not installed or fails.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng not found on PATH; install it (Debian/Ubuntu: "
                           "`apt-get install espeak-ng`, macOS: `brew install espeak-ng`)")
    proc = subprocess.run([exe, "-v", voice, "-s", str(rate), "--stdout", "--stdin"],
                          input=text.encode(), capture_output=True, check=False)
    if proc.returncode != 0 or len(proc.stdout) <= 44:
        raise RuntimeError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode().strip()}")
    return load_audio(proc.stdout, sample_rate=sample_rate, name="espeak-ng output").samples


def trim_silence(samples: np.ndarray, *, threshold: float = 0.002) -> np.ndarray:
    """Drop leading and trailing samples quieter than `threshold` (|x|), keeping the speech."""
    loud = np.flatnonzero(np.abs(samples) > threshold)
    return samples[loud[0]:loud[-1] + 1] if len(loud) else samples[:0]


def _frames(samples: np.ndarray, sample_rate: int, frame_size: int):
    """Yield mono float AudioFrames with pts counted in samples."""
    for i in range(0, len(samples), frame_size):
        chunk = np.ascontiguousarray(samples[i:i + frame_size], dtype=np.float32)[None]  # [1, n]
        frame = av.AudioFrame.from_ndarray(chunk, format="flt", layout="mono")
        frame.sample_rate = sample_rate
        frame.pts = i
        frame.time_base = Fraction(1, sample_rate)
        yield frame


def _add_audio_stream(container, sample_rate: int, codec: str, bit_rate: int):
    """Add a mono audio stream; every stream must exist before the first packet is muxed."""
    stream = container.add_stream(codec, rate=sample_rate, layout="mono")
    stream.bit_rate = bit_rate
    return stream


def _encode_audio(container, stream, samples: np.ndarray, sample_rate: int) -> None:
    """Encode `samples` into `stream` of an open output container, flushing the encoder."""
    # the codec context converts sample format and re-chunks to the encoder's frame size itself
    for frame in _frames(samples, sample_rate, 1024):
        container.mux(stream.encode(frame))
    container.mux(stream.encode(None))


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int = 16000, *,
                bit_rate: int = 24000) -> Path:
    """Write mono samples as Opus in Ogg (".ogg"/".opus") or AAC in MP4 (".m4a").

    Args:
        path: output file; the suffix picks the container and codec.
        samples: [N] float32 in [-1, 1].
        sample_rate: rate of `samples` in Hz (Opus accepts 8/12/16/24/48 kHz).
        bit_rate: encoder bit rate in bits per second.
    Returns:
        the output path.
    """
    path = Path(path)
    codec = {".ogg": "libopus", ".opus": "libopus", ".m4a": "aac"}.get(path.suffix)
    if codec is None:
        raise ValueError(f"{path}: unsupported audio suffix (use .ogg, .opus or .m4a)")
    with av.open(str(path), mode="w") as container:
        stream = _add_audio_stream(container, sample_rate, codec, bit_rate)
        _encode_audio(container, stream, samples, sample_rate)
    return path


def mux_audio_into_video(video_path: str | Path, audio: np.ndarray, sample_rate: int,
                         start_time: float, out_path: str | Path) -> Path:
    """Copy a video and add a mono AAC track holding `audio` at `start_time`, silence elsewhere.

    The video stream is copied packet for packet (no re-encode), so frame times are unchanged;
    any audio already in `video_path` is dropped. The new track spans the whole video (or longer,
    if the speech runs past its end).

    Args:
        video_path: input video with one video stream (mp4/mkv/mov/webm).
        audio: [N] float32 mono samples.
        sample_rate: rate of `audio` in Hz.
        start_time: seconds after the video's first frame where audio[0] plays.
        out_path: output file (.mp4, .mkv or .mov).
    Returns:
        the output path.
    """
    if start_time < 0:
        raise ValueError(f"start_time must be >= 0, got {start_time}")
    out_path = Path(out_path)
    with av.open(str(video_path)) as src:
        if not src.streams.video:
            raise ValueError(f"{video_path}: has no video stream")
        with av.open(str(out_path), mode="w") as dst:
            video_out = dst.add_stream_from_template(src.streams.video[0])
            audio_out = _add_audio_stream(dst, sample_rate, "aac", 64000)
            video_end = _copy_video(src, video_out, dst)
            # start_time is on video.py's clock, which counts from the video's first frame
            in_video = src.streams.video[0]
            offset = round((start_time + float((in_video.start_time or 0) * in_video.time_base))
                           * sample_rate)
            track = np.zeros(max(round(video_end * sample_rate), offset + len(audio)), np.float32)
            track[offset:offset + len(audio)] = audio
            _encode_audio(dst, audio_out, track, sample_rate)
    return out_path


def _copy_video(src, out_stream, dst) -> float:
    """Remux the first video stream of `src` into `out_stream`; returns its end time in seconds."""
    in_stream = src.streams.video[0]
    end = 0.0
    for packet in src.demux(in_stream):
        # the demuxer ends each stream with an empty flush packet that must not be muxed
        if packet.dts is None:
            continue
        if packet.pts is not None:
            end = max(end, float((packet.pts + (packet.duration or 0)) * in_stream.time_base))
        packet.stream = out_stream
        dst.mux(packet)
    return end


def write_speech_fixtures(out_dir: str | Path = FIXTURE_DIR, *, sample_rate: int = 16000) -> Path:
    """Synthesize FIXTURES as .ogg files plus manifest.json (file, text, utterance times).

    Each utterance is trimmed to its audible part and placed after its silence, so the manifest's
    `start`/`end` are where speech really begins and ends. Returns the manifest path.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    for stem, parts in FIXTURES:
        pieces, utterances, t = [], [], 0.0
        for text, silence in parts:
            speech = trim_silence(synthesize_speech(text, sample_rate=sample_rate))
            pieces += [np.zeros(round(silence * sample_rate), np.float32), speech]
            t += round(silence * sample_rate) / sample_rate
            utterances.append({"text": text, "start": round(t, 3),
                               "end": round(t + len(speech) / sample_rate, 3)})
            t += len(speech) / sample_rate
        pieces.append(np.zeros(round(0.5 * sample_rate), np.float32))
        write_audio(out_dir / f"{stem}.ogg", np.concatenate(pieces), sample_rate, bit_rate=32000)
        entries.append({"file": f"{stem}.ogg", "text": " ".join(u["text"] for u in utterances),
                        "start": utterances[0]["start"], "utterances": utterances})
    manifest = out_dir / "manifest.json"
    manifest.write_text(json.dumps({"sample_rate": sample_rate, "voice": DEFAULT_VOICE,
                                    "rate_wpm": DEFAULT_RATE, "fixtures": entries}, indent=2) + "\n")
    return manifest
