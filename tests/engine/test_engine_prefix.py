"""Prefix state reuse and EVS video prompts: restored-state answers equal full recomputation.

Run: pytest tests/engine/test_engine_prefix.py
"""
from __future__ import annotations

import av
import numpy as np
import pytest
import torch
from PIL import Image

import nanovl
from nanovl.engine.engine import EngineConfig, LLMEngine
from nanovl.errors import InvalidRequestError
from nanovl.llm import LLM
from nanovl.sampling_params import SamplingParams
from nanovl.testing.random_checkpoint import write_random_vl_checkpoint
from nanovl.tokenizer import Tokenizer
from nanovl.train.tokenizer import build_tiny_tokenizer

GREEDY = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)


def write_video(path, num_frames: int = 8, rate: int = 4):
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(num_frames):
            # half of each frame repeats the previous one, so EVS has something to drop
            rgb = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            rgb[:, :32] = 40 * (i % 2)
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_prefix")
    tok_dir = build_tiny_tokenizer(root / "tok")
    ckpt = write_random_vl_checkpoint(root / "ckpt", tokenizer_dir=tok_dir,
                                      overrides={"llm_config": {"vocab_size": 512}})
    engine = LLMEngine(EngineConfig(model=str(ckpt), max_num_seqs=2, video_pruning_rate=0.5, max_num_tiles=4),
                       model=nanovl.load_model(ckpt), tokenizer=Tokenizer.from_dir(ckpt))
    return LLM(engine=engine), write_video(root / "clip.mp4")


def picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (150, 260, 3), dtype=np.uint8))


def follow_up(media_part: dict, question: str = "Why is that?") -> tuple[list[dict], list[dict]]:
    first = [{"role": "user", "content": [media_part, {"type": "text", "text": "Describe it."}]}]
    return first, first + [{"role": "assistant", "content": "It is noise."},
                           {"role": "user", "content": question}]


def computed(llm: LLM, fn):
    before = llm.engine.runner.num_prefill_tokens
    out = fn()
    return out, llm.engine.runner.num_prefill_tokens - before


@pytest.mark.parametrize("kind", ["image", "video"])
def test_restored_prefix_equals_recompute(setup, kind):
    llm, video = setup
    part = ({"type": "image", "image": picture(1)} if kind == "image"
            else {"type": "video", "video": str(video), "fps": 4})
    prefix_msgs, full_msgs = follow_up(part)
    handle = llm.save_prefix(prefix_msgs)
    full, n_full = computed(llm, lambda: llm.chat(full_msgs, GREEDY)[0])
    reused, n_reused = computed(llm, lambda: llm.chat(full_msgs, GREEDY, prefix=handle)[0])
    assert reused.token_ids == full.token_ids
    assert reused.num_cached_tokens == handle.num_tokens > 0 and full.num_cached_tokens == 0
    assert n_full == full.num_prompt_tokens
    assert n_reused == n_full - handle.num_tokens
    # the handle is reusable and its state is not consumed by the first use
    again = llm.chat(full_msgs, GREEDY, prefix=handle)[0]
    assert again.token_ids == full.token_ids


def test_prefix_mismatch_is_rejected(setup):
    llm, _ = setup
    prefix_msgs, full_msgs = follow_up({"type": "image", "image": picture(1)})
    handle = llm.save_prefix(prefix_msgs)
    _, other_image = follow_up({"type": "image", "image": picture(2)})
    with pytest.raises(InvalidRequestError, match="differ from the saved prefix"):
        llm.chat(other_image, GREEDY, prefix=handle)
    other_text = [{"role": "user", "content": "something else entirely " * 20}]
    with pytest.raises(InvalidRequestError, match="does not start with the saved prefix"):
        llm.chat(other_text, GREEDY, prefix=handle)
    assert not llm.engine.has_unfinished_requests()


def test_evs_video_prompt_uses_true_frame_counts(setup):
    llm, video = setup
    msgs = [{"role": "user", "content": [{"type": "video", "video": str(video), "fps": 4},
                                         {"type": "text", "text": "What happens?"}]}]
    processed = llm.processor.process_chat(msgs)
    item = processed.mm_input.items[0]
    assert item.pixel_values.shape[0] == 8 and item.pruning_rate == 0.5
    model = llm.engine.model
    with torch.inference_mode():
        embeds, counts = model.encode_video(item.pixel_values, 0.5)
    assert sum(counts) == item.num_embeds and counts[0] == model.config.num_image_token
    assert len(set(counts)) > 1, "EVS should keep different counts per frame"
    ids = list(processed.prompt_token_ids)
    ids[item.offset:item.end] = processed.mm_input.span_ids(item, counts)
    assert ids != processed.prompt_token_ids
    assert len(ids) == llm.count_tokens(msgs)
    want = []
    with torch.inference_mode():
        for _ in range(GREEDY.max_tokens):
            want.append(int(model(torch.tensor([ids + want]), image_embeds=embeds)[0, -1].argmax()))
    assert llm.chat(msgs, GREEDY)[0].token_ids == want
