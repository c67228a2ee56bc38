"""PackedBatch: one pixel tensor per batch, handed from a worker whole, encoded as the loose tiles were.

    pytest tests/train/test_packed_batch.py -q
"""
from __future__ import annotations

import pytest
import torch
from tokenizers import Tokenizer

import nanovl
from nanovl.llm import BUNDLED_MODEL
from nanovl.model.presets import preset_config
from nanovl.train.collate import encode_media
from nanovl.train.dataset import CurriculumStream, PackedBatch, StageSchedule, pack
from nanovl.train.recipe import PRESET


def _stream(**kw) -> CurriculumStream:
    cfg = preset_config(PRESET)
    # past both stage boundaries: stage 2's mix, pages, pairs and videos among them
    return CurriculumStream(str(BUNDLED_MODEL), seed=0, batch_size=6, start=7, stage_of=StageSchedule(0, 0),
                            image_size=cfg.force_image_size, max_tiles=cfg.max_num_tiles, mean=cfg.norm_mean,
                            std=cfg.norm_std, **kw)


@pytest.fixture(scope="module")
def loose():
    tok = Tokenizer.from_file(str(BUNDLED_MODEL / "tokenizer.json"))
    return _stream().batch(7, tok), tok


def test_pack_makes_every_media_a_view_of_one_tensor(loose):
    batch, tok = loose
    expect = [m.pixel_values.clone() for ex in batch for m in ex.media]
    packed = pack(_stream().batch(7, tok))
    media = [m for ex in packed for m in ex.media]
    assert len(media) == len(expect) >= 6
    assert packed.pixels.shape[0] == sum(e.shape[0] for e in expect)
    base = packed.pixels.untyped_storage().data_ptr()
    for m, e in zip(media, expect):
        assert m.pixel_values.untyped_storage().data_ptr() == base
        assert torch.equal(m.pixel_values, e)


def test_bf16_pack_rounds_once_as_bf16_autocast_does(loose):
    # the claim behind shipping bf16 pixels to a bf16-autocast run: the patch embedding sees the same input
    batch, tok = loose
    model = nanovl.load_model(BUNDLED_MODEL).float().eval()
    fp32, bf16 = pack(_stream().batch(7, tok)), pack(_stream().batch(7, tok), torch.bfloat16)
    assert bf16.pixels.dtype == torch.bfloat16
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        a = model.vision_model(fp32.pixels[:8])
        b = model.vision_model(bf16.pixels[:8])
    assert torch.equal(a, b)
    # and it is a real rounding, not a no-op: without autocast the two differ
    with torch.no_grad():
        assert not torch.equal(model.vision_model(fp32.pixels[:8]), model.vision_model(bf16.pixels[:8].float()))


def test_encode_media_of_a_packed_batch_equals_the_loose_one(loose):
    batch, tok = loose
    model = nanovl.load_model(BUNDLED_MODEL).float().eval()
    with torch.no_grad():
        counts_a, rows_a = encode_media(model, batch)
        counts_b, rows_b = encode_media(model, pack(_stream().batch(7, tok)))
    assert counts_a == counts_b
    for a, b in zip(rows_a, rows_b):
        assert (a is None and b is None) or torch.equal(a, b)


def test_a_worker_hands_over_one_packed_batch_intact(loose):
    batch, _ = loose
    stream = _stream(pixel_dtype=torch.bfloat16)
    loader = torch.utils.data.DataLoader(stream, batch_size=None, num_workers=1, collate_fn=lambda b: b)
    got = next(iter(loader))
    assert isinstance(got, PackedBatch) and got.pixels.dtype == torch.bfloat16
    # the worker's time making it crosses too: the training log's data supply figure (batch_make_s)
    assert 0.0 < got.make_s < 600.0
    assert [ex.ids for ex in got] == [ex.ids for ex in batch]
    base = got.pixels.untyped_storage().data_ptr()
    for ex_got, ex_loose in zip(got, batch):
        for m_got, m_loose in zip(ex_got.media, ex_loose.media):
            assert m_got.pixel_values.untyped_storage().data_ptr() == base
            assert torch.equal(m_got.pixel_values, m_loose.pixel_values.to(torch.bfloat16))


@pytest.mark.gpu
def test_pin_memory_keeps_media_views_on_the_pinned_tensor(loose):
    batch, tok = loose
    packed = pack(_stream().batch(7, tok)).pin_memory()
    assert packed.pixels.is_pinned()
    assert all(m.pixel_values.is_pinned() for ex in packed for m in ex.media)
