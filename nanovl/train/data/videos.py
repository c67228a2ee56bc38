"""Synthetic clips: moving shapes and words at known times, plus a spoken fact that is not on screen.

Frames are drawn with PIL, encoded with PyAV (h264, else mpeg4) and muxed with a 16 kHz mono AAC
narration made by espeak-ng. Event times sit on a 0.5 s grid that every frame rate (4/6/8 fps) hits.
"""
from __future__ import annotations

import random
import shutil
import subprocess
import tempfile
import wave
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .common import Sample, chat, load_font, to_json

DEFAULT_SIZE = 128
FPS_CHOICES = (4, 6, 8)
SAMPLE_RATE = 16000
NUM_LANES = 4
SHAPES = ("circle", "square", "triangle")
COLORS = {"red": (230, 30, 30), "green": (30, 200, 60), "blue": (40, 90, 255), "yellow": (250, 220, 30)}
WORDS = ("STOP", "GO", "EXIT", "OPEN", "WAIT", "HELLO")
FACTS = {"code word": ("banana", "falcon", "orange", "violet", "tiger", "maple"),
         "room number": ("12", "27", "45", "58", "63", "81"),
         "meeting day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday")}
QUESTION_KINDS = ("appear", "disappear", "interval", "dense", "count", "narration", "speech")
_QUESTION_WEIGHTS = (3, 2, 2, 3, 1, 2, 1)
_WORD_COLOR = (255, 255, 255)


class SpeechUnavailableError(RuntimeError):
    """espeak-ng is not installed, so no narration can be synthesised."""


@dataclass(frozen=True)
class VideoEvent:
    """One thing on screen from `start` (inclusive) to `end` (exclusive), in its own horizontal lane."""

    kind: str  # "shape" or "word"
    start: float
    end: float
    lane: int
    name: str  # shape name or the word
    color: str  # key of COLORS, or "white" for words
    motion: str  # "static", "left_to_right" or "right_to_left"
    x0: float  # centre x at `start`, in pixels
    x1: float  # centre x just before `end`

    @property
    def caption(self) -> str:
        if self.kind == "word":
            return f"the word {self.name} is shown"
        if self.motion == "static":
            return f"a {self.color} {self.name} is shown"
        return f"a {self.color} {self.name} moves from {self.motion.replace('_', ' ')}"

    def visible(self, t: float) -> bool:
        return self.start <= t < self.end

    def center(self, t: float, size: int) -> tuple[float, float]:
        """Centre (x, y) in pixels at time t (linear motion across the event's span)."""
        frac = (t - self.start) / (self.end - self.start)
        return self.x0 + frac * (self.x1 - self.x0), (self.lane + 0.5) * size / NUM_LANES


@dataclass(frozen=True)
class Narration:
    """The spoken fact and when it is heard (seconds)."""

    text: str
    key: str
    value: str
    start: float
    end: float


@dataclass(frozen=True)
class VideoScript:
    """Everything needed to render one clip."""

    duration: float
    fps: int
    size: int
    background: tuple[int, int, int]
    events: tuple[VideoEvent, ...]

    @property
    def num_frames(self) -> int:
        return int(round(self.duration * self.fps))

    def captions(self) -> list[dict]:
        """Dense captions sorted by start time: [{"start", "end", "caption"}]."""
        ordered = sorted(self.events, key=lambda e: (e.start, e.lane))
        return [{"start": e.start, "end": e.end, "caption": e.caption} for e in ordered]


def _grid_time(rng: random.Random, low: float, high: float) -> float:
    return rng.randint(int(low * 2), int(high * 2)) / 2


def random_script(rng: random.Random, *, size: int = DEFAULT_SIZE) -> VideoScript:
    """Draw duration (4-12 s), fps, and 2-4 events with distinct lanes, colours and words."""
    duration, fps = float(rng.randint(4, 12)), rng.choice(FPS_CHOICES)
    num_events = rng.randint(2, 4)
    lanes = rng.sample(range(NUM_LANES), num_events)
    has_word = rng.random() < 0.5
    colors = rng.sample(tuple(COLORS), num_events)
    radius = _radius(size)
    events = []
    for i, lane in enumerate(lanes):
        # every event starts and ends inside the clip, so "appear" and "disappear" are both seen
        start = _grid_time(rng, 0.5, duration - 1.5)
        end = _grid_time(rng, start + 1.0, duration - 0.5)
        if has_word and i == 0:
            events.append(VideoEvent("word", start, end, lane, rng.choice(WORDS), "white", "static",
                                     size / 2, size / 2))
            continue
        motion = rng.choice(("static", "left_to_right", "right_to_left"))
        left, right = radius + 2.0, size - radius - 2.0
        x0 = {"static": rng.uniform(left, right), "left_to_right": left, "right_to_left": right}[motion]
        x1 = {"static": x0, "left_to_right": right, "right_to_left": left}[motion]
        events.append(VideoEvent("shape", start, end, lane, rng.choice(SHAPES), colors[i], motion, x0, x1))
    background = (rng.randint(20, 60),) * 3
    return VideoScript(duration, fps, size, background, tuple(events))


def _radius(size: int) -> float:
    return size * 0.09


def render_frame(script: VideoScript, t: float) -> Image.Image:
    """Draw the frame at time `t` (seconds)."""
    size = script.size
    image = Image.new("RGB", (size, size), script.background)
    draw = ImageDraw.Draw(image)
    r = _radius(size)
    for event in script.events:
        if not event.visible(t):
            continue
        x, y = event.center(t, size)
        if event.kind == "word":
            font = load_font("sans", int(size * 0.16), True)
            draw.text((x, y), event.name, font=font, fill=_WORD_COLOR, anchor="mm")
        elif event.name == "circle":
            draw.ellipse([x - r, y - r, x + r, y + r], fill=COLORS[event.color])
        elif event.name == "square":
            draw.rectangle([x - r, y - r, x + r, y + r], fill=COLORS[event.color])
        else:
            draw.polygon([(x, y - r), (x - r, y + r), (x + r, y + r)], fill=COLORS[event.color])
    return image


def has_speech() -> bool:
    """Whether espeak-ng is on PATH."""
    return shutil.which("espeak-ng") is not None


def synthesize_speech(text: str) -> np.ndarray:
    """Speak `text` with espeak-ng; returns float32 mono samples at 16 kHz with silence trimmed.

    Raises:
        SpeechUnavailableError: espeak-ng is not installed.
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise SpeechUnavailableError("espeak-ng is not installed: run `apt-get install -y espeak-ng`, "
                                     "or pass audio=False to make videos without narration")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "speech.wav"
        # the voice and rate that nanovl/train/speech.py found Whisper tiny.en transcribes reliably
        subprocess.run([exe, "-v", "en-us+f3", "-s", "130", "-w", str(path), text], check=True, capture_output=True)
        with wave.open(str(path)) as f:
            rate, raw = f.getframerate(), f.readframes(f.getnframes())
    pcm = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    # linear resampling is plenty for speech at this quality and keeps the output deterministic
    n_out = int(round(len(pcm) * SAMPLE_RATE / rate))
    pcm = np.interp(np.arange(n_out) * rate / SAMPLE_RATE, np.arange(len(pcm)), pcm).astype(np.float32)
    loud = np.flatnonzero(np.abs(pcm) > 0.02)
    return pcm[loud[0]:loud[-1] + 1] if len(loud) else pcm


def _video_codec() -> str:
    import av

    try:
        av.codec.Codec("libx264", "w")
        return "libx264"
    except Exception:
        return "mpeg4"


def write_video(script: VideoScript, path: str | Path, *, audio: np.ndarray | None = None) -> str:
    """Encode the script's frames (and an optional 16 kHz mono track) into an mp4 at `path`.

    Args:
        audio: float32 samples at SAMPLE_RATE covering the clip, or None for a silent video.
    Returns:
        the video codec used ("libx264" or "mpeg4").
    """
    import av

    codec = _video_codec()
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream(codec, rate=script.fps)
        video.width = video.height = script.size
        video.pix_fmt = "yuv420p"
        # near-lossless and single-threaded, so colours survive and the bytes are reproducible
        video.options = {"crf": "12", "preset": "veryfast", "threads": "1"} if codec == "libx264" else {"qscale": "2"}
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=SAMPLE_RATE)
            sound.layout = "mono"
        for i in range(script.num_frames):
            frame = av.VideoFrame.from_ndarray(np.asarray(render_frame(script, i / script.fps)), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, script.fps)
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        if sound is not None:
            for offset in range(0, len(audio), 1024):
                chunk = audio[None, offset:offset + 1024]
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout="mono")
                frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, offset, Fraction(1, SAMPLE_RATE)
                container.mux(sound.encode(frame))
            container.mux(sound.encode(None))
    return codec


def _place_narration(rng: random.Random, script: VideoScript,
                     audio: bool) -> tuple[Narration | None, np.ndarray | None]:
    """Pick a fact, speak it, and lay it into a silent track at a 0.5 s grid time; (None, None) without audio."""
    key = rng.choice(tuple(FACTS))
    value = rng.choice(FACTS[key])
    # drawn before the audio check, so audio=False leaves the rest of the sample unchanged
    where = rng.random()
    if not audio:
        return None, None
    text = f"The {key} is {value}."
    speech = synthesize_speech(text)
    latest = max(0.5, script.duration - len(speech) / SAMPLE_RATE - 0.25)
    start = (1 + int(where * int(latest * 2))) / 2  # a grid time in [0.5, latest]
    track = np.zeros(int(script.duration * SAMPLE_RATE), dtype=np.float32)
    begin = int(start * SAMPLE_RATE)
    piece = speech[:len(track) - begin]
    track[begin:begin + len(piece)] = piece
    return Narration(text, key, value, start, round(start + len(piece) / SAMPLE_RATE, 1)), track


def _question(kind: str, script: VideoScript, narration: Narration | None, rng: random.Random) -> tuple[str, str]:
    shapes = [e for e in script.events if e.kind == "shape"]
    words = [e for e in script.events if e.kind == "word"]
    # fall back to the dense caption when the drawn kind has nothing to ask about
    if (kind in ("narration", "speech") and narration is None) or (kind == "interval" and not words):
        kind = "dense"
    if kind in ("appear", "disappear"):
        e = rng.choice(shapes)
        verb, t = ("appear", e.start) if kind == "appear" else ("disappear", e.end)
        return f"When does the {e.color} {e.name} {verb}? Answer in seconds.", f"{t:.1f}"
    if kind == "interval":
        e = words[0]
        return f"When is the word {e.name} shown? Answer in seconds.", f"{e.start:.1f} to {e.end:.1f}"
    if kind == "count":
        return "How many shapes appear in the video?", str(len(shapes))
    if kind == "narration":
        return f"According to the narration, what is the {narration.key}?", narration.value
    if kind == "speech":
        return "What does the narrator say?", narration.text
    if kind == "dense":
        return "Describe the events with timestamps.", to_json(script.captions())
    raise ValueError(f"question must be one of {QUESTION_KINDS}, got {kind!r}")


def make_video_sample(seed: int, workdir: str | Path, *, size: int = DEFAULT_SIZE, audio: bool = True,
                      question: str | None = None, keep_frames: bool = False) -> Sample:
    """Write `workdir/video_<seed>.mp4` and return a timing, dense-caption or narration question about it.

    Args:
        seed: reproduces the clip and the question exactly.
        workdir: folder for the mp4 (created if missing).
        size: frame side in pixels (even).
        audio: mux a spoken fact; raises SpeechUnavailableError when espeak-ng is missing.
            With audio=False the clip is silent, truth["narration"] is None, and no narration is asked.
        question: one of QUESTION_KINDS; drawn from the seed when None.
        keep_frames: also return the rendered frames (PIL images) in `Sample.frames`.
    """
    if size % 2:
        raise ValueError(f"size must be even for yuv420p, got {size}")
    rng = random.Random(seed)
    script = random_script(rng, size=size)
    drawn = rng.choices(QUESTION_KINDS, weights=_QUESTION_WEIGHTS)[0]
    narration, track = _place_narration(rng, script, audio)
    text, target = _question(question or drawn, script, narration, rng)
    folder = Path(workdir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"video_{seed}.mp4"
    codec = write_video(script, path, audio=track)
    truth = {"duration": script.duration, "fps": script.fps, "size": size, "num_frames": script.num_frames,
             "codec": codec, "captions": script.captions(), "events": [asdict(e) for e in script.events],
             "narration": asdict(narration) if narration else None, "question_kind": question or drawn}
    frames = [render_frame(script, i / script.fps) for i in range(script.num_frames)] if keep_frames else None
    return Sample("video", chat(text, target, video=True), target, truth, video_path=str(path), frames=frames,
                  seed=seed)
