"""Scene tiles: one still frame of the synthetic videos (coloured shapes and white words on a dark
background), and the objects it shows, top to bottom, as the answer.

Why: v3 named every shape of every clip "a yellow circle" (docs/TRAINING_NOTES.md §9) although a
linear probe on its own image tokens tells the four colours apart 100 % of the time and the three
shapes 100 % (max over a frame's tokens). The video questions name the object they ask about
("When does the red triangle appear?"), so only the dense-caption and count questions ever made the
LM say what it sees, and those come late and rarely. A scene tile is the text tile's counterpart for
the video vocabulary: every answer word must come from the image, in the phrases captions use.
"""
from __future__ import annotations

import random

from . import videos as V
from .common import Sample, chat

QUESTION = "List the objects in this image, top to bottom."


def object_phrase(event: V.VideoEvent) -> str:
    """The caption's noun phrase without the motion: "a red circle", "the word STOP"."""
    return f"the word {event.name}" if event.kind == "word" else f"a {event.color} {event.name}"


def make_scene_tile_sample(seed: int) -> Sample:
    """The frame of a random clip at a random time with at least one object on screen.

    Objects sit in lanes (one per quarter of the height), so "top to bottom" is the lane order and
    the answer is unambiguous. The truth holds each object's colour and shape for scoring by part.
    """
    rng = random.Random(seed)
    script = V.random_script(rng, size=V.DEFAULT_SIZE)
    # a time when something is visible: the start of a random event, nudged into its span
    event = rng.choice(script.events)
    t = rng.uniform(event.start, event.end - 1e-3)
    shown = sorted((e for e in script.events if e.visible(t)), key=lambda e: e.lane)
    image = V.render_frame(script, t)
    lines = [object_phrase(e) for e in shown]
    objects = [{"kind": e.kind, "color": e.color, "name": e.name} for e in shown]
    target = "\n".join(lines)
    return Sample("scene_tile", chat(QUESTION, target, num_images=1), target, {"lines": lines, "objects": objects},
                  images=[image], seed=seed)
