"""Scene tiles: one frame of the synthetic videos; the answer names exactly the objects drawn, top to bottom.

    pytest tests/train/test_data_scene_tiles.py -q
"""
from __future__ import annotations

import numpy as np

from nanovl.train.data import videos as V
from nanovl.train.data.scene_tiles import QUESTION, make_scene_tile_sample, object_phrase

SEEDS = range(60)


def test_same_seed_same_tile():
    a, b = make_scene_tile_sample(7), make_scene_tile_sample(7)
    assert a.images[0].tobytes() == b.images[0].tobytes() and a.target == b.target
    assert any(make_scene_tile_sample(s).images[0].tobytes() != a.images[0].tobytes() for s in range(8, 12))


def test_every_named_colour_is_drawn_and_no_other():
    for seed in SEEDS:
        s = make_scene_tile_sample(seed)
        assert s.images[0].size == (V.DEFAULT_SIZE, V.DEFAULT_SIZE) and s.question == QUESTION
        assert s.target.split("\n") == s.truth["lines"] and s.truth["lines"]
        pixels = np.asarray(s.images[0]).reshape(-1, 3)
        named = {o["color"] for o in s.truth["objects"] if o["kind"] == "shape"}
        for colour, rgb in V.COLORS.items():
            drawn = int((pixels == rgb).all(axis=1).sum())
            # a shape of radius ~11.5 px covers >= ~130 px (a triangle); antialiasing is off in PIL fills
            assert (drawn > 100) == (colour in named), (seed, colour, drawn, s.target)
        has_word = any(o["kind"] == "word" for o in s.truth["objects"])
        assert ((pixels == 255).all(axis=1).sum() > 30) == has_word, (seed, s.target)


def test_objects_are_listed_top_to_bottom():
    # rows of each shape's colour: the listed order is the order of their topmost rows
    multi = 0
    for seed in SEEDS:
        s = make_scene_tile_sample(seed)
        shapes = [o for o in s.truth["objects"] if o["kind"] == "shape"]
        if len(shapes) < 2:
            continue
        multi += 1
        img = np.asarray(s.images[0])
        tops = [np.nonzero((img == V.COLORS[o["color"]]).all(axis=2).any(axis=1))[0][0] for o in shapes]
        assert tops == sorted(tops), (seed, s.target, tops)
    assert multi >= 5  # the check saw scenes with several shapes


def test_phrases_are_the_captions_nouns():
    word = V.VideoEvent("word", 0, 1, 0, "STOP", "white", "static", 64, 64)
    shape = V.VideoEvent("shape", 0, 1, 1, "circle", "red", "left_to_right", 10, 100)
    assert object_phrase(word) == "the word STOP" and word.caption.startswith(object_phrase(word))
    assert object_phrase(shape) == "a red circle" and shape.caption.startswith(object_phrase(shape))


def test_seeds_cover_every_colour_and_shape():
    objs = [o for seed in SEEDS for o in make_scene_tile_sample(seed).truth["objects"] if o["kind"] == "shape"]
    assert {o["color"] for o in objs} == set(V.COLORS) and {o["name"] for o in objs} == set(V.SHAPES)
