"""Tile grid choice (SPEC 5a) vs hand examples and a brute force.

Run: pytest tests/inputs/test_image_grid.py
"""
from __future__ import annotations

import random
from fractions import Fraction

import pytest

from nanovl.inputs import image as image_mod
from nanovl.inputs.image import num_image_tiles, tile_grid


def brute_force_grid(width, height, max_tiles, image_size=512):
    """Order-free restatement of the rule: of the grids tied for the closest aspect ratio (float
    arithmetic, like the reference), the largest one whose product p has
    W*H > 0.5*S^2*p, else the smallest one."""
    grids = [(c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1)
             if c * r <= max_tiles]
    diffs = {g: abs(width / height - g[0] / g[1]) for g in grids}
    best = min(diffs.values())
    tied = [g for g in grids if diffs[g] == best]
    products = [c * r for c, r in tied]
    assert len(set(products)) == len(products), "equal-product tie: the rule would be order dependent"
    big_enough = [g for g in tied if width * height > 0.5 * image_size ** 2 * g[0] * g[1]]
    if big_enough:
        return max(big_enough, key=lambda g: g[0] * g[1])
    return min(tied, key=lambda g: g[0] * g[1])


@pytest.mark.parametrize("size,max_tiles,expected", [
    ((512, 512), 12, (1, 1)),      # SPEC 5a: one tile
    ((1024, 768), 12, (4, 3)),     # SPEC 5a: 12 + thumbnail
    ((2048, 1024), 12, (4, 2)),    # SPEC 5a: (2,1)/(4,2) tie, area 2097152 > 1048576
    ((1024, 512), 12, (2, 1)),     # same tie, area 524288 < 1048576
    ((1448, 724), 12, (2, 1)),     # 2*724^2 = 1048352 <= 1048576
    ((1450, 725), 12, (4, 2)),     # 1051250 > 1048576
    ((724, 724), 12, (1, 1)),      # (1,1)/(2,2) tie: 524176 <= 524288
    ((725, 725), 12, (2, 2)),      # 525625 > 524288
    ((1086, 1086), 12, (2, 2)),    # (3,3) needs > 1179648: 1179396 is not
    ((1087, 1087), 12, (3, 3)),    # 1181569 > 1179648
    ((7, 6), 12, (4, 3)),          # float rounding: 4/3 - 7/6 < 7/6 - 1 in doubles
    ((100, 1200), 12, (1, 12)),    # extreme tall
    ((1, 10000), 12, (1, 12)),
    ((1200, 100), 12, (12, 1)),    # extreme wide
    ((10000, 1), 12, (12, 1)),
    ((3000, 1000), 6, (3, 1)),     # ar 3; (6,2) would be 12 > 6 tiles
    ((5000, 5000), 1, (1, 1)),     # max_tiles 1 always one tile
])
def test_tile_grid_hand_examples(size, max_tiles, expected):
    assert tile_grid(*size, max_tiles) == expected


def test_tile_grid_small_tile_size():
    # a 2:1 image of 128x64 with 32-pixel tiles: 8192 > 0.5*32*32*8 -> (4, 2)
    assert tile_grid(128, 64, 12, image_size=32) == (4, 2)
    assert tile_grid(64, 32, 12, image_size=32) == (2, 1)


def _sizes():
    rng = random.Random(0)
    sizes = [(rng.randint(1, 4000), rng.randint(1, 4000)) for _ in range(1500)]
    # exact aspect ratios of every candidate grid at several scales hit the tie rule
    for c in range(1, 13):
        for r in range(1, 13):
            for scale in (1, 37, 128, 300, 512, 700, 1024):
                sizes.append((c * scale, r * scale))
    return sizes


@pytest.mark.parametrize("max_tiles", [1, 2, 4, 6, 9, 12, 24])
def test_tile_grid_matches_brute_force(max_tiles):
    for w, h in _sizes():
        assert tile_grid(w, h, max_tiles) == brute_force_grid(w, h, max_tiles), (w, h, max_tiles)


@pytest.mark.parametrize("max_tiles", range(1, 65))
def test_equal_product_grids_never_tie(max_tiles):
    # if a third candidate ratio lies strictly between two equal-product ratios, it is strictly
    # closer to their midpoint, so the two can never both be the closest: order is unobservable
    grids = [(c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1)
             if c * r <= max_tiles]
    values = sorted({Fraction(c, r) for c, r in grids})
    for a in grids:
        for b in grids:
            if a < b and a[0] * a[1] == b[0] * b[1]:
                lo, hi = sorted((Fraction(*a), Fraction(*b)))
                assert any(lo < v < hi for v in values), (a, b)


def test_equal_product_order_reversed_gives_same_grids(monkeypatch):
    forward = {(w, h): tile_grid(w, h, 12) for w, h in _sizes()}

    def reversed_within_products(max_tiles):
        grids = [(c, r) for c in range(max_tiles, 0, -1) for r in range(max_tiles, 0, -1)
                 if c * r <= max_tiles]
        return tuple(sorted(grids, key=lambda g: g[0] * g[1]))

    monkeypatch.setattr(image_mod, "candidate_grids", reversed_within_products)
    assert {(w, h): tile_grid(w, h, 12) for w, h in _sizes()} == forward


def test_candidate_order():
    grids = image_mod.candidate_grids(4)
    assert grids == ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1), (1, 4), (2, 2), (4, 1))


@pytest.mark.parametrize("size,max_tiles,thumb,expected", [
    ((512, 512), 12, True, 1),       # one tile: no thumbnail
    ((300, 200), 12, True, 7),      # ar 1.5 -> (3, 2) however small
    ((1024, 768), 12, True, 13),
    ((1024, 768), 12, False, 12),
    ((2048, 1024), 12, True, 9),
    ((100, 1200), 12, True, 13),
    ((1200, 100), 12, True, 13),
    ((1200, 100), 1, True, 1),
])
def test_num_image_tiles(size, max_tiles, thumb, expected):
    assert num_image_tiles(*size, max_tiles, thumb) == expected


def test_tile_grid_rejects_bad_arguments():
    for args in ((0, 10, 12), (10, 0, 12), (10, 10, 0)):
        with pytest.raises(ValueError):
            tile_grid(*args)
