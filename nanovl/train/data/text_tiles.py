"""Text tiles: one 128 px tile holding a few strings an invoice prints, and those strings as the answer.

The densest, cheapest reading signal in the curriculum: one tile (16 image tokens) whose every answer
token must come from the image. The strings are the ones a random invoice or receipt draws (vendor,
title and number, date, item rows split into cells, totals), drawn at 16-28 px: about the size
document text has after tiling (13-20 px base fonts at scale 2 on a 512 px page, cut into 3x3
tiles of ~170 px resized to 128: ~19-30 px).
"""
from __future__ import annotations

import random

from PIL import Image, ImageColor, ImageDraw

from .charts import PALETTE, random_chart
from .common import FAMILIES, Sample, augment, chat, load_font
from .documents import CURRENCIES, random_invoice, random_style, render_invoice, text_rows

TILE = 128
QUESTION = "Read the text in this image, line by line."
_MARGIN = 4


def invoice_strings(rng: random.Random) -> list[str]:
    """The printed lines of a random document, top to bottom, each followed by its cells when it has
    several: a tile shows a whole line where it fits and single cells (a number, a date) otherwise."""
    record: list = []
    # laid out, not drawn: only the record is used
    render_invoice(random_invoice(rng), random_style(rng), size=(256, 256), scale=1, record=record, ink=False)
    out = []
    for row in text_rows(record):
        out.append(" ".join(row))
        if len(row) > 1:
            out.extend(row)
    return out


_CURRENCY_MARKS = tuple(CURRENCIES) + tuple(CURRENCIES.values())


def money_strings(rng: random.Random, count: int = 4) -> list[str]:
    """The printed totals of `count` random documents ("TOTAL €311.30", "Total: 335.37 USD", and the
    amount cell alone): a document prints its currency once, in that line, so a page-sized tile
    sample holds one about every 15 strings; money tiles give the symbols and codes their own signal."""
    out: list[str] = []
    for _ in range(count):
        out.extend(x for x in invoice_strings(rng) if any(m in x for m in _CURRENCY_MARKS))
    return out


def chart_strings(rng: random.Random, count: int = 3) -> list[str]:
    """What `count` random charts print: each category's label, then its value as the chart writes it
    ("Wed", "64.6"). v5 misread most chart values, pie values (white on a coloured wedge) always
    (docs/TRAINING_NOTES.md section 13); chart tiles give those strings their own reading signal."""
    out: list[str] = []
    for _ in range(count):
        spec = random_chart(rng)
        for label, value in zip(spec.labels, spec.values):
            out += [label, spec.value_text(value)]
    return out


def make_text_tile_sample(seed: int, *, max_lines: int = 4, money: bool = False, chart: bool = False) -> Sample:
    """A white tile with 1..max_lines strings at random places, one under the other; answer = the strings.

    Args:
        seed: reproduces the sample exactly.
        max_lines: most strings on the tile (fewer when they do not fit).
        money: the strings are documents' printed totals (`money_strings`), not one document's lines.
        chart: the strings are charts' labels and values (`chart_strings`), black on white or, as pie
            charts print their values, white on one of the chart colours.
    """
    if money and chart:
        raise ValueError("a tile holds money strings or chart strings, not both")
    rng = random.Random(seed)
    strings = money_strings(rng) if money else chart_strings(rng) if chart else invoice_strings(rng)
    start = rng.randrange(len(strings))
    family, bold = rng.choice(FAMILIES), rng.random() < 0.3
    background, ink = (255, 255, 255), (0, 0, 0)
    if chart:  # drawn only for chart tiles, so the other tiles' seeds give the same tiles as before
        bold = rng.random() < 0.7
        if rng.random() < 0.4:
            background, ink = ImageColor.getrgb(rng.choice(PALETTE)), (255, 255, 255)
    image = Image.new("RGB", (TILE, TILE), background)
    draw = ImageDraw.Draw(image)
    y, lines, want = rng.randint(0, 12), [], rng.randint(1, max_lines)
    base = rng.randint(17, 28)
    for text in strings[start:]:
        if len(lines) == want:
            break
        size = base
        font = load_font(family, size, bold)
        # long strings shrink (down to 16 px) rather than run off the tile; one that still does not
        # fit is skipped (its cells follow it in `strings`); no room below ends the tile
        while size > 16 and draw.textlength(text, font=font) > TILE - 2 * _MARGIN:
            size -= 1
            font = load_font(family, size, bold)
        width = draw.textlength(text, font=font)
        if width > TILE - 2 * _MARGIN:
            continue
        if y + size > TILE - _MARGIN:
            break
        x = rng.uniform(_MARGIN, TILE - _MARGIN - width)
        draw.text((x, y), text, font=font, fill=ink)
        lines.append(text)
        y += size + rng.randint(4, 14)
    if not lines:  # nothing fitted (the last strings were all too long): the next seed instead
        return make_text_tile_sample(seed + 1 if seed < 2 ** 63 else seed - 1, max_lines=max_lines, money=money,
                                     chart=chart)
    image = augment(image, rng, max_angle=1.5, max_noise=5.0, fill=background)
    target = "\n".join(lines)
    return Sample("text_tile", chat(QUESTION, target, num_images=1), target, {"lines": lines}, images=[image],
                  seed=seed)
