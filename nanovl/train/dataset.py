"""Training examples built exactly like inference prompts, and the on-the-fly worker dataset.

A prompt is `render_chat` of the user turn (media markers), each image marker expanded to
`<img></img>` and each video marker to one "Frame i sampled at t seconds: <img></img>" block per
frame (media_prompt's form) with transcript lines after the frame at which the speech starts.
The `<image>` tokens between each `<img>`/`</img>` pair are inserted by `collate.assemble` once
the number each pair holds is known (for videos that is only after EVS runs on the embeddings).
The loss covers the completion and its end-of-turn `<SPECIAL_12>` only.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Iterator

import torch

from nanovl.chat_template import render_chat
from nanovl.inputs.image import image_to_tiles, normalize_, pil_to_float
from nanovl.inputs.transcript import Segment, Transcript, interleave, speech_line
from nanovl.train.samples import Mix, TrainSample, completion_text, draw_samples

END_OF_TURN = "<SPECIAL_12>"
# example seeds: dataset seed in the high bits, example index in the low 32 (as data.mixture does)
_INDEX_BITS = 32


@dataclass
class Media:
    """One image (tiles, one `<img>` pair) or video (frames, one pair per frame)."""

    kind: str  # "image" or "video"
    pixel_values: torch.Tensor  # [N, 3, S, S] normalized
    pruning_rate: float = 0.0


@dataclass
class Example:
    """Prompt + completion ids with empty `<img></img>` pairs; `media` in pair order.

    ids: all token ids; the last `n_target` are trained. Image k fills one pair with
    tiles * tokens_per_tile tokens; a video fills one pair per frame.
    """

    ids: list[int]
    n_target: int
    media: list[Media] = field(default_factory=list)
    task: str = ""
    thinking: bool = False


def video_text(times: list[float], speech: list[tuple[float, float, str]]) -> str:
    """The video's prompt text with empty frame pairs and transcript lines (media_prompt's frame form)."""
    transcript = Transcript(tuple(Segment(s, e, t) for s, e, t in speech))
    slots = interleave(list(times), transcript, line=speech_line)
    parts = []
    for i, (t, (_, lines)) in enumerate(zip(times, slots)):
        parts.append(f"Frame {i + 1} sampled at {t:.2f} seconds: <img></img>")
        parts.extend(lines)
    return "\n".join(parts)


def prompt_text(ts: TrainSample) -> str:
    """The rendered inference prompt with every media marker expanded to empty `<img></img>` pairs."""
    # generator markers carry no source; the template only needs the part types
    parts = [{**p, p["type"]: p.get(p["type"], "sample")} if p["type"] in ("image", "video") else p
             for p in ts.sample.messages[0]["content"]]
    prompt = render_chat([{"role": "user", "content": parts}], enable_thinking=ts.thinking).prompt
    out, images = [], 0
    for piece in _split_markers(prompt):
        if piece == "<image>":
            out.append("<img></img>")
            images += 1
        elif piece == "<video>":
            out.append(video_text(ts.frame_times, ts.speech))
        else:
            out.append(piece)
    return "".join(out)


def _split_markers(prompt: str) -> list[str]:
    import re

    return [p for p in re.split(r"(<image>|<video>)", prompt) if p]


def build_example(ts: TrainSample, tokenizer, *, image_size: int, max_tiles: int, mean, std,
                  pruning_rate: float = 0.0, with_target: bool = True,
                  tiles: dict[int, torch.Tensor] | None = None) -> Example:
    """Tokenize one sample into an Example (tiles made with `image_to_tiles`, as the processor does).

    Args:
        tokenizer: a `tokenizers.Tokenizer` or `nanovl.tokenizer.Tokenizer` (encode without specials added).
        pruning_rate: EVS rate applied to this example's video.
        with_target: False leaves only the prompt (evaluation).
        tiles: tiles already cut, by `id` of their image: the samples of one draw that share an image
            (`draw_samples`) cut it once. Only for images alive while the dict is.
    """
    prompt_ids = _encode(tokenizer, prompt_text(ts))
    target_ids = _encode(tokenizer, completion_text(ts) + END_OF_TURN) if with_target else []
    cut = {} if tiles is None else tiles
    for im in ts.sample.images:
        if id(im) not in cut:
            cut[id(im)] = image_to_tiles(im, image_size=image_size, max_tiles=max_tiles, mean=mean, std=std)
    media = [Media("image", cut[id(im)]) for im in ts.sample.images]
    if ts.frames:
        frames = torch.cat([_frame_tile(f, image_size) for f in ts.frames])
        media.append(Media("video", normalize_(frames, mean, std), pruning_rate))
    return Example(prompt_ids + target_ids, len(target_ids), media, ts.sample.task, ts.thinking)


def _frame_tile(frame, image_size: int) -> torch.Tensor:
    from nanovl.inputs.image import resize_bicubic

    x = pil_to_float(frame)
    return resize_bicubic(x, image_size, image_size)


def _encode(tokenizer, text: str) -> list[int]:
    out = tokenizer.encode(text, add_special_tokens=False)
    return list(out.ids) if hasattr(out, "ids") else list(out)


@dataclass(frozen=True)
class StageSchedule:
    """Batch index -> curriculum stage: stage 0 (text tiles) for the first `stage0_batches`, stage 1
    for the next `stage1_batches`, then stage 2."""

    stage1_batches: int
    stage0_batches: int = 0

    def __call__(self, b: int) -> int:
        if b < self.stage0_batches:
            return 0
        return 1 if b < self.stage0_batches + self.stage1_batches else 2


class PackedBatch(list):
    """A batch of Examples whose media pixels all live in one tensor, `pixels` (every tile and frame
    in example and pair order); each Media's `pixel_values` is a view of it.

    Why: a stage-2 batch of 64 holds ~700 tiles, 140 MB as float32 in ~70 tensors. Handed from a
    worker tensor by tensor, each one is its own shared-memory file, and the main process then
    copied them to the GPU from pageable memory, synchronously, inside the training step. One
    tensor is one shared-memory file; the loader's pin thread pins it beside the training loop
    (`pin_memory`), so the copy to the GPU is an asynchronous DMA; and `encode_media` sends it
    whole instead of concatenating the pieces again.
    """

    pixels: torch.Tensor | None = None
    # seconds the worker spent making this batch: workers x batch size / make_s is the data supply,
    # set beside the steps per second the training log reports (is stage 2 data-bound on this machine?)
    make_s: float = 0.0

    def pin_memory(self) -> "PackedBatch":
        if self.pixels is not None:
            _point_media_at(self, self.pixels.pin_memory())
        return self


def pack(examples: list[Example], dtype: torch.dtype = torch.float32) -> PackedBatch:
    """`examples` as a PackedBatch, pixels cast to `dtype`.

    bfloat16 halves the hand-off and is exact for a bf16-autocast run: the ViT's patch embedding
    (`PatchGenerator.embedder`) casts its input to bf16 before anything else touches it, so rounding here
    rounds the same way, once.
    """
    out = PackedBatch(examples)
    media = [m for ex in examples for m in ex.media]
    if media:
        _point_media_at(out, torch.cat([m.pixel_values for m in media]).to(dtype))
    return out


def _point_media_at(batch: PackedBatch, pixels: torch.Tensor) -> None:
    batch.pixels, pos = pixels, 0
    for ex in batch:
        for m in ex.media:
            n = m.pixel_values.shape[0]
            m.pixel_values, pos = pixels[pos:pos + n], pos + n


class CurriculumStream(torch.utils.data.IterableDataset):
    """Endless batches of Examples made by worker processes from seeds.

    Batch b holds examples b*batch_size .. (b+1)*batch_size-1 of dataset `seed`; worker w makes the
    batches b = w (mod workers) and the loader interleaves them in order, so the stream is the same
    for any worker count and resuming at batch `start` reproduces the rest exactly.
    """

    def __init__(self, tokenizer_dir: str, *, seed: int, batch_size: int, start: int, stage_of: StageSchedule,
                 image_size: int, max_tiles: int, mean, std, evs_rates=(0.0, 0.0, 0.3, 0.5, 0.7),
                 stage0_batch_size: int | None = None, pixel_dtype: torch.dtype = torch.float32,
                 mix: Mix = Mix()):
        self.tokenizer_dir, self.seed, self.batch_size, self.start = tokenizer_dir, seed, batch_size, start
        # stage-0 examples are single tiles, ~10x cheaper than a page: larger batches keep the GPU busy
        self.stage0_batch_size = stage0_batch_size or batch_size
        self.stage_of = stage_of
        self.image_size, self.max_tiles, self.mean, self.std = image_size, max_tiles, mean, std
        self.evs_rates = evs_rates
        self.pixel_dtype = pixel_dtype  # of the PackedBatches the workers yield
        self.mix = mix

    def __iter__(self) -> Iterator[list[Example]]:
        from tokenizers import Tokenizer

        torch.set_num_threads(1)
        tok = Tokenizer.from_file(os.path.join(self.tokenizer_dir, "tokenizer.json"))
        info = torch.utils.data.get_worker_info()
        wid, nw = (info.id, info.num_workers) if info else (0, 1)
        b = self.start + wid
        while True:
            t = time.perf_counter()
            out = pack(self.batch(b, tok), self.pixel_dtype)
            out.make_s = time.perf_counter() - t
            yield out
            b += nw

    def batch(self, b: int, tok) -> list[Example]:
        """Batch `b` of the stream."""
        stage = self.stage_of(b)
        out = []
        size = self.stage0_batch_size if stage == 0 else self.batch_size
        # stage-0 seeds live in the upper half of the index range, apart from the other stages'
        first = (1 << (_INDEX_BITS - 1)) + b * size if stage == 0 else b * self.batch_size
        # one seed per draw: a draw gives one example, or several questions of one image (Mix), and the
        # batch takes draws until it is full, so the seed block of a batch is never overrun
        i = 0
        while len(out) < size:
            seed = (self.seed << _INDEX_BITS) + first + i
            i += 1
            rate = self.evs_rates[seed % len(self.evs_rates)]
            tiles: dict[int, torch.Tensor] = {}  # the draw's images, cut once for all its questions
            for ts in draw_samples(seed, stage, self.mix)[:size - len(out)]:
                out.append(build_example(ts, tok, image_size=self.image_size, max_tiles=self.max_tiles,
                                         mean=self.mean, std=self.std, pruning_rate=rate, tiles=tiles))
        return out
