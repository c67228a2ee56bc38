"""Text tiles: reproducible by seed, the answer is exactly the strings drawn, all of them on the tile.

    pytest tests/train/test_data_text_tiles.py -q
"""
from __future__ import annotations

import random

import numpy as np

from nanovl.train.data.text_tiles import QUESTION, TILE, invoice_strings, make_text_tile_sample

SEEDS = range(40)


def test_same_seed_same_tile():
    a, b, c = make_text_tile_sample(3), make_text_tile_sample(3), make_text_tile_sample(4)
    assert a.images[0].tobytes() == b.images[0].tobytes() and a.target == b.target
    assert a.images[0].tobytes() != c.images[0].tobytes()


def test_answer_is_the_drawn_strings_in_order():
    for seed in SEEDS:
        s = make_text_tile_sample(seed)
        assert s.images[0].size == (TILE, TILE) and s.question == QUESTION
        lines = s.target.split("\n")
        assert lines == s.truth["lines"] and 1 <= len(lines) <= 4 and all(lines)
        # the strings come from one document, in its order (a subsequence: strings repeat, e.g. amounts)
        rest = iter(invoice_strings(random.Random(seed)))
        assert all(any(line == text for text in rest) for line in lines)


def test_ink_only_where_text_is():
    # every tile has ink, and a tile with more lines has more ink rows (nothing drawn off the tile)
    for seed in SEEDS:
        s = make_text_tile_sample(seed)
        dark = (np.asarray(s.images[0].convert("L")) < 100).any(axis=1)
        assert dark.sum() >= 8 * len(s.truth["lines"])


def test_money_tiles_show_printed_totals_with_their_currency():
    from nanovl.train.data.documents import CURRENCIES

    marks = tuple(CURRENCIES) + tuple(CURRENCIES.values())
    for seed in range(12):
        s = make_text_tile_sample(seed, money=True)
        assert s.target == make_text_tile_sample(seed, money=True).target  # reproducible
        assert all(any(m in line for m in marks) for line in s.truth["lines"]), s.truth["lines"]


def test_chart_tiles_show_chart_labels_and_values_some_white_on_colour():
    import pytest

    from nanovl.train.data.text_tiles import chart_strings

    coloured = 0
    for seed in range(30):
        s = make_text_tile_sample(seed, chart=True)
        assert s.target == make_text_tile_sample(seed, chart=True).target  # reproducible
        rest = iter(chart_strings(random.Random(seed)))
        assert all(any(line == text for text in rest) for line in s.truth["lines"]), s.truth["lines"]
        pixels = np.asarray(s.images[0].convert("RGB")).astype(int)
        corner = pixels[TILE // 2 - 2:TILE // 2 + 2, 1:3].reshape(-1, 3).mean(0)  # left edge, mid-height
        if corner.min() < 200:  # a chart colour behind white text
            coloured += 1
            assert (pixels.min(axis=2) > 220).any(), "white text on the coloured tile"
    # 40 % of chart tiles are drawn on a chart colour
    assert 5 <= coloured <= 20, coloured
    with pytest.raises(ValueError, match="not both"):
        make_text_tile_sample(0, money=True, chart=True)
