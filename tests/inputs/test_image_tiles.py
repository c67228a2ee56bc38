"""Pixel content, order and normalisation of image tiles; run: pytest tests/inputs/test_image_tiles.py"""
from __future__ import annotations

import pytest
import torch
from PIL import Image, ImageDraw

from helpers import assert_close
from nanovl.inputs.image import CLIP_MEAN, CLIP_STD, image_to_tiles, image_to_tiles_ref, num_image_tiles

S = 32
COLORS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0),
          (0, 255, 255), (255, 0, 255), (128, 64, 0), (255, 255, 255)]


def expected_pixel(rgb, mean=CLIP_MEAN, std=CLIP_STD):
    return torch.tensor([(v / 255 - m) / s for v, m, s in zip(rgb, mean, std)])


def block_image(cols, rows, block_w, block_h):
    """cols x rows blocks of solid colours, block k (row-major) in COLORS[k]."""
    image = Image.new("RGB", (cols * block_w, rows * block_h))
    draw = ImageDraw.Draw(image)
    for k in range(cols * rows):
        r, c = divmod(k, cols)
        draw.rectangle([c * block_w, r * block_h, (c + 1) * block_w - 1, (r + 1) * block_h - 1],
                       fill=COLORS[k])
    return image


def test_quadrants_land_in_row_major_tiles_exact():
    # 64x64 with 32-pixel tiles and max 4 tiles: (1,1)/(2,2) tie, 4096 > 2048 -> 2x2, no resize
    tiles = image_to_tiles(block_image(2, 2, S, S), image_size=S, max_tiles=4)
    assert tiles.shape == (5, 3, S, S) and tiles.dtype == torch.float32
    for k in range(4):
        want = expected_pixel(COLORS[k]).view(3, 1, 1).expand(3, S, S)
        assert_close(f"tile {k}", want, tiles[k], atol=1e-5, rtol=0)
    # thumbnail last: each quadrant of it keeps its colour away from the seams
    h = S // 2
    for k in range(4):
        r, c = divmod(k, 2)
        centre = tiles[4, :, r * h + h // 2, c * h + h // 2]
        assert_close(f"thumbnail quadrant {k}", expected_pixel(COLORS[k]), centre, atol=2e-2, rtol=0)


def test_wide_image_eight_tiles_in_row_major_order():
    # 128x64: (2,1)/(4,2) tie, 8192 > 4096 -> 4 columns x 2 rows
    tiles = image_to_tiles(block_image(4, 2, S, S), image_size=S, max_tiles=12)
    assert tiles.shape == (9, 3, S, S)
    for k in range(8):
        assert_close(f"tile {k}", expected_pixel(COLORS[k]).view(3, 1, 1).expand(3, S, S),
                     tiles[k], atol=1e-5, rtol=0)


def test_quadrants_after_resize():
    # 100x100 -> 2x2 grid -> resized to 64x64: tile centres keep their quadrant colour
    tiles = image_to_tiles(block_image(2, 2, 50, 50), image_size=S, max_tiles=4)
    assert tiles.shape == (5, 3, S, S)
    for k in range(4):
        assert_close(f"tile {k} centre", expected_pixel(COLORS[k]), tiles[k, :, S // 2, S // 2],
                     atol=1e-4, rtol=0)


def test_constant_image_stays_constant_through_resize():
    image = Image.new("RGB", (173, 91), (10, 200, 90))
    tiles = image_to_tiles(image, image_size=S, max_tiles=12)
    want = expected_pixel((10, 200, 90)).view(1, 3, 1, 1).expand_as(tiles)
    assert_close("constant", want, tiles, atol=1e-4, rtol=0)


def test_single_tile_has_no_thumbnail():
    tiles = image_to_tiles(Image.new("RGB", (S, S), (1, 2, 3)), image_size=S)
    assert tiles.shape == (1, 3, S, S)


def test_thumbnail_off():
    tiles = image_to_tiles(block_image(2, 2, S, S), image_size=S, max_tiles=4, use_thumbnail=False)
    assert tiles.shape == (4, 3, S, S)


def test_custom_mean_std():
    tiles = image_to_tiles(Image.new("RGB", (S, S), (255, 0, 51)), image_size=S,
                           mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    # (1 - .5)/.5 = 1, (0 - .5)/.5 = -1, (.2 - .5)/.5 = -.6
    assert_close("pixel", torch.tensor([1.0, -1.0, -0.6]), tiles[0, :, 3, 5], atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(40, 30), (100, 10), (10, 100), (33, 33), (64, 32), (200, 70)])
@pytest.mark.parametrize("max_tiles", [1, 6, 12])
def test_tile_count_matches_num_image_tiles(size, max_tiles):
    tiles = image_to_tiles(Image.new("RGB", size), image_size=16, max_tiles=max_tiles)
    assert tiles.shape[0] == num_image_tiles(*size, max_tiles, True, image_size=16)


def test_non_rgb_input_is_converted():
    tiles = image_to_tiles(Image.new("L", (S, S), 255), image_size=S)
    assert_close("white", expected_pixel((255, 255, 255)), tiles[0, :, 0, 0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("size", [(512, 512), (300, 700), (100, 80), (1024, 768), (200, 1400)])
@pytest.mark.parametrize("image_size,max_tiles,thumb", [(128, 12, True), (64, 6, False), (32, 1, True)])
def test_tiles_equal_the_reference_composition_bit_for_bit(size, image_size, max_tiles, thumb):
    g = torch.Generator().manual_seed(size[0] * 7 + size[1])
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=g, dtype=torch.uint8).numpy()
    image = Image.fromarray(pixels)
    got = image_to_tiles(image, image_size=image_size, max_tiles=max_tiles, use_thumbnail=thumb)
    want = image_to_tiles_ref(image, image_size=image_size, max_tiles=max_tiles, use_thumbnail=thumb)
    assert got.is_contiguous() and torch.equal(got, want)


def test_in_place_normalisation_equals_the_out_of_place_one():
    from nanovl.inputs.image import normalize, normalize_

    x = torch.rand(5, 3, 16, 16, generator=torch.Generator().manual_seed(3))
    want = normalize(x, CLIP_MEAN, CLIP_STD)
    assert normalize_(x, CLIP_MEAN, CLIP_STD) is x and torch.equal(x, want)
