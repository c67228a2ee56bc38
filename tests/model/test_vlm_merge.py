"""NemotronVL on the tiny preset: image-token merge, encode_images batching, encode_video, errors.

Run: python -m pytest tests/model/test_vlm_merge.py
"""
from __future__ import annotations

import pytest
import torch
from helpers import assert_close

from nanovl.model import vlm
from nanovl.model.presets import preset_config
from nanovl.model.projector import pixel_shuffle
from nanovl.testing.random_checkpoint import random_tensor

CFG = preset_config("tiny")
IMG = CFG.img_context_token_id
D = CFG.text.hidden_size
S = CFG.force_image_size


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = vlm.NemotronVL(CFG).eval()
    # the writer's scaled init: the default nn init of tiny layers gives near-constant logits
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.copy_(random_tensor(name, tuple(p.shape), gen, depth=6))
    return m


def _ids_with_images(n_images: int) -> torch.Tensor:
    ids = torch.randint(20, 300, (2, 11))
    slots = [(0, 1), (0, 2), (0, 7), (1, 0), (1, 5), (1, 6), (1, 10)][:n_images]
    for b, t in slots:
        ids[b, t] = IMG
    return ids


def test_embed_inputs_replaces_image_positions_in_order(model):
    ids = _ids_with_images(7)
    image_embeds = torch.randn(7, D)
    with torch.no_grad():
        out = model.embed_inputs(ids, image_embeds)
        table = model.language_model.backbone.embeddings.weight
    k = 0
    for b in range(2):
        for t in range(11):
            if ids[b, t] == IMG:
                assert torch.equal(out[b, t], image_embeds[k]), (b, t)
                k += 1
            else:
                assert torch.equal(out[b, t], table[ids[b, t]]), (b, t)
    assert k == 7


def test_forward_with_image_embeds_equals_lm_on_merged_embeddings(model):
    ids = _ids_with_images(4)
    image_embeds = torch.randn(4, D)
    merged = model.language_model.embed(ids).clone()
    merged[ids == IMG] = image_embeds
    with torch.no_grad():
        ref = model.language_model(inputs_embeds=merged)
        out = model(ids, image_embeds=image_embeds)
    assert torch.equal(ref, out)
    assert out.shape == (2, 11, CFG.text.vocab_size)


def test_forward_with_pixels_equals_forward_with_encoded_tiles(model):
    n_tok = CFG.num_image_token
    ids = torch.randint(20, 300, (1, 2 * n_tok + 5))
    ids[0, 3:3 + 2 * n_tok] = IMG
    pixels = torch.randn(2, 3, S, S)
    with torch.no_grad():
        a = model(ids, pixels)
        b = model(ids, image_embeds=model.encode_images(pixels).reshape(-1, D))
        c = model(ids, image_embeds=torch.zeros(2 * n_tok, D))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3  # the images reach the logits


def test_image_count_mismatch_raises(model):
    ids = _ids_with_images(5)
    for rows in (4, 6):
        with pytest.raises(ValueError, match="5 <image> tokens"):
            model.embed_inputs(ids, torch.randn(rows, D))
        with pytest.raises(ValueError, match="<image>"):
            model(ids, image_embeds=torch.randn(rows, D))
    with pytest.raises(ValueError, match="image_embeds"):
        model.embed_inputs(ids, torch.randn(5, D + 1))
    with pytest.raises(ValueError, match="not both"):
        model(ids, torch.randn(1, 3, S, S), image_embeds=torch.randn(5, D))


def test_encode_images_matches_stepwise_construction_and_micro_batches(model, monkeypatch):
    pixels = torch.randn(5, 3, S, S)
    g = S // CFG.patch_size
    with torch.no_grad():
        whole = model.encode_images(pixels)
        # a budget of two tiles' patches: groups of 2, 2 and 1
        monkeypatch.setattr(vlm, "PATCHES_PER_MICRO_BATCH", 2 * g * g)
        batched = model.encode_images(pixels)
        feats = model.vision_model(pixels).reshape(5, g, g, -1)
        ref = model.mlp1(pixel_shuffle(feats).reshape(5, (g // 2) ** 2, -1))
    assert whole.shape == (5, CFG.num_image_token, D)
    assert_close("micro-batched", whole, batched, atol=1e-6, rtol=1e-6)
    assert_close("stepwise", ref, whole, atol=1e-6, rtol=1e-6)
    assert model.encode_images(pixels[:0]).shape == (0, CFG.num_image_token, D)


def test_encode_images_non_square_and_odd_grid(model):
    with torch.no_grad():
        out = model.encode_images(torch.randn(2, 3, 64, 128))  # 4x8 patches -> 2x4 tokens
    assert out.shape == (2, 8, D)
    with pytest.raises(ValueError, match="even"):
        model.encode_images(torch.randn(1, 3, 48, 64))


def test_encode_images_follows_model_dtype(model):
    bf16 = vlm.NemotronVL(CFG).to(torch.bfloat16)
    bf16.load_state_dict(model.state_dict())
    pixels = torch.randn(1, 3, S, S)
    with torch.no_grad():
        out = bf16.encode_images(pixels)
        ref = model.encode_images(pixels)
    assert out.dtype == torch.bfloat16 and model.encode_images(pixels).dtype == torch.float32
    assert_close("bf16 vs fp32 image tokens", ref, out, atol=0.1 * ref.abs().max().item(), rtol=0.1)


def test_encode_video_without_pruning_keeps_everything(model):
    pixels = torch.randn(3, 3, S, S)
    with torch.no_grad():
        kept, counts = model.encode_video(pixels, 0.0)
        full = model.encode_images(pixels)
    assert counts == [CFG.num_image_token] * 3
    assert torch.equal(kept, full.reshape(-1, D))
    with pytest.raises(ValueError, match="pruning_rate"):
        model.encode_video(pixels, 1.0)


def test_encode_video_applies_evs_mask(model):
    evs = pytest.importorskip("nanovl.inputs.evs")
    pixels = torch.randn(6, 3, S, S)
    pixels[3] = pixels[2]  # a repeated frame: EVS should drop most of it
    with torch.no_grad():
        kept, counts = model.encode_video(pixels, 0.5)
        full = model.encode_images(pixels)
    mask = evs.retention_mask(full, 0.5)
    assert torch.equal(kept, full.reshape(-1, D)[mask])
    assert counts == mask.reshape(6, -1).sum(1).tolist()
    assert sum(counts) == kept.shape[0] < full.shape[0] * full.shape[1]
    assert counts[0] == CFG.num_image_token
