"""Processor: chat messages + media -> prompt token ids + a plan for the media (MultiModalInput).

Images are tiled and videos sampled into frames here, on the host. The model runner encodes
them later; with EVS the tokens each frame keeps are only known after encoding, so a video's
span is first laid out with all its kept tokens on frame 1 (SPEC Part F) and rebuilt by
`MultiModalInput.span_ids` with the true counts. The total length never changes.
"""
from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping, Sequence
from urllib.parse import unquote, urlparse

import torch

from nanovl.chat_template import render_chat
from nanovl.errors import InvalidRequestError
from nanovl.inputs import evs, image as image_io, video as video_io
from nanovl.inputs.errors import MediaError
from nanovl.inputs.media_prompt import video_placeholder
from nanovl.inputs.pdf_parts import expand_pdf_parts

if TYPE_CHECKING:
    from nanovl.config import TextConfig, VLConfig
    from nanovl.tokenizer import Tokenizer

_MARKERS = re.compile(r"(<image>|<video>)")
# Upper bounds of the per-media options a request may set. Both cost before the context check can
# refuse the prompt: choosing a tile grid walks max_num_tiles^2 candidates, and every sampled frame
# is decoded and held as a tile (128 frames is the model's usual video budget).
MAX_TILES_OPTION = 128
MAX_FRAMES_OPTION = 1024


@dataclass
class MediaItem:
    """One image or video of a prompt.

    Attributes:
        kind: "image" or "video".
        pixel_values: [N, 3, S, S] normalized tiles (image) or frames (video).
        offset: prompt position of the item's first token; `length` positions belong to it.
        num_embeds: `<image>` tokens it fills (tiles * tokens_per_tile, or the EVS kept count).
        frame_prefix_ids: video only: ids of each frame's "Frame i sampled at t seconds: " text
            (with a transcript: preceded by the speech lines heard since the previous frame).
        suffix_ids: video only: ids after the last frame (speech heard from the last frame on).
        pruning_rate: EVS rate q for a video (0 = keep all).
    """

    kind: str
    pixel_values: torch.Tensor
    offset: int
    length: int
    num_embeds: int
    name: str = ""
    frame_prefix_ids: list[list[int]] = field(default_factory=list)
    timestamps: list[float] = field(default_factory=list)
    pruning_rate: float = 0.0
    suffix_ids: list[int] = field(default_factory=list)
    _digest: str | None = None

    @property
    def end(self) -> int:
        return self.offset + self.length

    def digest(self) -> str:
        """Content hash of the pixels and layout (prefix reuse compares media by it)."""
        if self._digest is None:
            h = hashlib.blake2b(digest_size=16)
            h.update(f"{self.kind}:{tuple(self.pixel_values.shape)}:{self.pruning_rate}".encode())
            h.update(self.pixel_values.detach().cpu().contiguous().numpy().tobytes())
            self._digest = h.hexdigest()
        return self._digest


@dataclass
class MultiModalInput:
    """The media of one prompt, in prompt order, and the ids that frame their embeddings."""

    items: list[MediaItem]
    image_token_id: int
    img_start_id: int
    img_end_id: int

    def span_ids(self, item: MediaItem, counts: Sequence[int] | None = None) -> list[int]:
        """Prompt ids of `item`; `counts` = `<image>` tokens per frame (video), default provisional."""
        ctx, start, end = self.image_token_id, self.img_start_id, self.img_end_id
        if item.kind == "image":
            return [start] + [ctx] * item.num_embeds + [end]
        n_frames = len(item.frame_prefix_ids)
        if counts is None and item.pruning_rate == 0:
            counts = [item.num_embeds // n_frames] * n_frames
        elif counts is None:
            # EVS: the real split is known after encoding; the total is fixed already
            counts = [item.num_embeds] + [0] * (n_frames - 1)
        if len(counts) != n_frames or sum(counts) != item.num_embeds:
            raise ValueError(f"{item.name}: per-frame counts {list(counts)} do not fit "
                             f"{n_frames} frames / {item.num_embeds} tokens")
        ids: list[int] = []
        for prefix, n in zip(item.frame_prefix_ids, counts):
            ids += prefix + [start] + [ctx] * n + [end]
        return ids + item.suffix_ids


@dataclass
class ProcessedPrompt:
    """Token ids (final length) + media plan + whether the prompt opened a thought."""

    prompt_token_ids: list[int]
    mm_input: MultiModalInput | None = None
    enable_thinking: bool | None = None
    prompt_text: str | None = None


class Processor:
    """Turns chat messages or plain prompts into ProcessedPrompt.

    Args:
        tokenizer: nanovl.tokenizer.Tokenizer (its chat template is used when it has one).
        model_config: VLConfig (media allowed) or TextConfig (text only).
        max_num_tiles / video_pruning_rate: None takes the model config's value.
    """

    def __init__(self, tokenizer: "Tokenizer", model_config: "VLConfig | TextConfig", *,
                 max_num_tiles: int | None = None, video_fps: float = 2.0, video_max_frames: int = 128,
                 video_pruning_rate: float | None = None,
                 max_image_pixels: int = image_io.DEFAULT_MAX_PIXELS) -> None:
        self.tokenizer = tokenizer
        self.config = model_config
        self.is_vl = hasattr(model_config, "vision")
        vl = model_config if self.is_vl else None
        self.max_num_tiles = max_num_tiles or (vl.max_num_tiles if vl else 12)
        self.video_fps = video_fps
        self.video_max_frames = video_max_frames
        self.video_pruning_rate = (video_pruning_rate if video_pruning_rate is not None
                                   else (vl.video_pruning_rate if vl else 0.0))
        self.max_image_pixels = max_image_pixels
        if vl is not None:
            self.tokens_per_tile = vl.num_image_token
            self.image_token_id = vl.img_context_token_id or tokenizer.token_to_id(vl.img_context_token)
            self.img_start_id = tokenizer.token_to_id(vl.img_start_token)
            self.img_end_id = tokenizer.token_to_id(vl.img_end_token)
            missing = [n for n, v in (("<image>", self.image_token_id), ("<img>", self.img_start_id),
                                      ("</img>", self.img_end_id)) if v is None]
            if missing:
                raise ValueError(f"the tokenizer has no id for the media token(s) {missing}")

    # ------------------------------------------------------------------ public
    def process_chat(self, messages: Sequence[Mapping[str, Any]], *, enable_thinking: bool | None = None,
                     add_generation_prompt: bool = True, tools: Sequence[Mapping[str, Any]] | None = None,
                     chat_template_kwargs: Mapping[str, Any] | None = None) -> ProcessedPrompt:
        """Render, tokenize and lay out the media of one conversation.

        Raises:
            InvalidRequestError for malformed messages, MediaError for unreadable media.
        """
        extra = dict(chat_template_kwargs or {})
        if enable_thinking is None:
            enable_thinking = extra.pop("enable_thinking", None)
        else:
            extra.pop("enable_thinking", None)
        extra = {**self.tokenizer.special_tokens, **extra}
        if self.is_vl:
            messages = expand_pdf_parts(messages)
        try:
            rendered = render_chat(messages, template=self.tokenizer.chat_template,
                                   enable_thinking=enable_thinking,
                                   add_generation_prompt=add_generation_prompt, tools=tools,
                                   extra_vars=extra)
        except MediaError:
            raise
        except ValueError as err:
            raise InvalidRequestError(str(err)) from err
        out = self._layout(rendered.prompt, rendered.media)
        out.enable_thinking = rendered.enable_thinking
        return out

    def process_text(self, prompt: str) -> ProcessedPrompt:
        """A raw prompt: tokenized as is (no template, no media expansion)."""
        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequestError("a text prompt must be a non-empty string")
        return ProcessedPrompt(self.tokenizer.encode(prompt), None, None, prompt)

    def image_token_count(self, width: int, height: int, max_num_tiles: int | None = None) -> int:
        """Prompt tokens one width x height image costs (`<img>`, `</img>` included)."""
        self._require_vl()
        tiles_ok = isinstance(max_num_tiles, int) and 1 <= max_num_tiles <= MAX_TILES_OPTION
        if max_num_tiles is not None and not tiles_ok:
            raise ValueError(f"max_num_tiles must be None or an integer from 1 to {MAX_TILES_OPTION}, "
                             f"got {max_num_tiles!r}")
        tiles = image_io.num_image_tiles(width, height, max_num_tiles or self.max_num_tiles,
                                         self.config.use_thumbnail, self.config.force_image_size)
        return tiles * self.tokens_per_tile + 2

    def video_embed_count(self, num_frames: int, pruning_rate: float | None = None) -> int:
        """`<image>` tokens of a video with `num_frames` frames (frame text not included)."""
        self._require_vl()
        q = self.video_pruning_rate if pruning_rate is None else pruning_rate
        return evs.retained_count(self.tokens_per_tile, num_frames, q)

    # --------------------------------------------------------------- internals
    def _require_vl(self) -> None:
        if not self.is_vl:
            raise InvalidRequestError("this model is text-only: images and videos are not supported")

    def _layout(self, prompt: str, media: list[dict]) -> ProcessedPrompt:
        pieces = _MARKERS.split(prompt)
        markers = pieces[1::2]
        if media:
            self._require_vl()
        if len(markers) != len(media):
            # literal "<image>" typed in a text part would shift every media item
            raise InvalidRequestError(f"the prompt has {len(markers)} <image>/<video> markers but the "
                                      f"messages hold {len(media)} media parts; do not type them as text")
        ids: list[int] = []
        items: list[MediaItem] = []
        for k, text in enumerate(pieces[0::2]):
            if text:
                ids += self.tokenizer.encode(text)
            if k < len(markers):
                part = media[k]
                if markers[k] != f"<{part['type']}>":
                    raise InvalidRequestError(f"media marker #{k + 1} is {markers[k]} but part #{k + 1} "
                                              f"is a {part['type']}")
                item = self._image(part, k, len(ids)) if part["type"] == "image" else self._video(part, k, len(ids))
                items.append(item)
                ids += self._span(item)
        mm = None
        if items:
            mm = MultiModalInput(items, self.image_token_id, self.img_start_id, self.img_end_id)
        return ProcessedPrompt(ids, mm, None, prompt)

    def _span(self, item: MediaItem) -> list[int]:
        mm = MultiModalInput([], self.image_token_id, self.img_start_id, self.img_end_id)
        span = mm.span_ids(item)
        item.length = len(span)
        return span

    def _image(self, part: dict, k: int, offset: int) -> MediaItem:
        name = f"image #{k + 1}"
        src = _local_source(part["data"], name)
        img = image_io.load_image(src, name=name, max_pixels=self.max_image_pixels)
        max_tiles = _int_option(part, ("max_num_tiles", "max_tiles"), self.max_num_tiles, name, MAX_TILES_OPTION)
        cfg = self.config
        tiles = image_io.image_to_tiles(img, image_size=cfg.force_image_size, max_tiles=max_tiles,
                                        use_thumbnail=cfg.use_thumbnail, mean=cfg.norm_mean, std=cfg.norm_std)
        return MediaItem("image", tiles, offset, 0, tiles.shape[0] * self.tokens_per_tile, name=name)

    def _video(self, part: dict, k: int, offset: int) -> MediaItem:
        name = f"video #{k + 1}"
        src = _local_source(part["data"], name)
        fps = _float_option(part, ("fps",), self.video_fps, name)
        if not 0 < fps < math.inf:
            raise InvalidRequestError(f"{name}: fps must be a finite number > 0, got {fps}")
        max_frames = _int_option(part, ("max_frames", "num_frames"), self.video_max_frames, name, MAX_FRAMES_OPTION)
        q = _float_option(part, ("video_pruning_rate", "pruning_rate"), self.video_pruning_rate, name)
        if not 0.0 <= q < 1.0:
            raise InvalidRequestError(f"{name}: video_pruning_rate must be in [0, 1), got {q}")
        cfg = self.config
        frames = video_io.load_video(src, fps=fps, max_frames=max_frames, image_size=cfg.force_image_size,
                                     mean=cfg.norm_mean, std=cfg.norm_std, max_pixels=self.max_image_pixels,
                                     name=name)
        n = frames.num_frames
        if part.get("transcript") == "auto":
            # the video's own audio, transcribed here (faster-whisper), rides with the frames
            from nanovl.inputs.asr import transcribe_media

            part = {**part, "transcript": transcribe_media(src, name=name)}
        prefixes, suffix = self._frame_prefixes(frames.timestamps, _speech_lines(part, frames.timestamps, name))
        return MediaItem("video", frames.pixel_values, offset, 0,
                         evs.retained_count(self.tokens_per_tile, n, q), name=name,
                         frame_prefix_ids=prefixes, suffix_ids=suffix,
                         timestamps=list(frames.timestamps), pruning_rate=q)

    def _frame_prefixes(self, timestamps: Sequence[float],
                        speech: list[list[str]] | None = None) -> tuple[list[list[int]], list[int]]:
        """Ids of each frame's leading text and of the text after the last frame, read off the
        tokenized placeholder of empty frames; `speech[i]` lines follow frame i on their own lines."""
        lines = video_placeholder(timestamps, [0] * len(timestamps)).split("\n")
        if speech:
            lines = [x for i, frame in enumerate(lines) for x in [frame, *speech[i]]]
        ids = self.tokenizer.encode("\n".join(lines))
        prefixes, cur = [], []
        for tok in ids:
            if tok == self.img_start_id:
                prefixes.append(cur)
            elif tok == self.img_end_id:
                cur = []
            else:
                cur.append(tok)
        if len(prefixes) != len(timestamps):
            raise ValueError(f"video placeholder split into {len(prefixes)} frames, expected {len(timestamps)}")
        return prefixes, cur


def _speech_lines(part: Mapping[str, Any], timestamps: Sequence[float], name: str) -> list[list[str]] | None:
    """A video part's optional "transcript" (a Transcript, or [{"start", "end", "text"}, ...]; "auto"
    was transcribed from its audio by `_video`) as "Speech at a-b seconds: ..." lines per frame slot
    (nanovl.inputs.transcript.interleave)."""
    from nanovl.inputs.transcript import Segment, Transcript, interleave

    speech = part.get("transcript")
    if speech is None:
        return None
    if not isinstance(speech, Transcript):
        try:
            speech = Transcript(tuple(Segment(float(s["start"]), float(s["end"]), str(s["text"])) for s in speech))
        except (TypeError, KeyError, ValueError) as err:
            raise InvalidRequestError(f"{name}: transcript must be a Transcript or a list of "
                                      f"{{start, end, text}} objects ({err!r})") from None
    # one prompt line per segment: a newline inside the text would read as a new frame line
    flat = Transcript(tuple(Segment(s.start, s.end, " ".join(s.text.split()), s.words) for s in speech.segments))
    return [lines for _, lines in interleave(list(timestamps), flat)]


def _int_option(part: Mapping[str, Any], keys: Sequence[str], default: int, name: str, most: int) -> int:
    """The first of `keys` the part sets, as an int in [1, most]; else `default`."""
    for key in keys:
        if part.get(key) is not None:
            value = part[key]
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= most:
                raise InvalidRequestError(f"{name}: {key} must be an integer from 1 to {most}, got {value!r:.40}")
            return value
    return default


def _float_option(part: Mapping[str, Any], keys: Sequence[str], default: float, name: str) -> float:
    """The first of `keys` the part sets, as a float (a number or a numeric string); else `default`.
    The caller checks the range."""
    for key in keys:
        if part.get(key) is not None:
            value = part[key]
            try:
                if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                    raise TypeError
                return float(value)
            except (TypeError, ValueError):
                raise InvalidRequestError(f"{name}: {key} must be a number, got {value!r:.40}") from None
    return default


def _local_source(src: Any, name: str) -> Any:
    """Paths, file:// URIs, data: URIs, bytes and PIL images pass; remote URLs are refused."""
    if isinstance(src, str):
        if src.startswith("file://"):
            return unquote(urlparse(src).path)
        scheme = urlparse(src).scheme.lower()
        if scheme in ("http", "https", "ftp", "s3", "gs"):
            raise MediaError(name, f"{scheme}:// URLs are not fetched by the engine; pass a local "
                                   "path, a file:// or data: URI, or the bytes")
    return src
