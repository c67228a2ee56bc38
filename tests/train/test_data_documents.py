"""Invoice/receipt generator: reproducibility, exact targets, layouts that fit, bounded augmentation."""
from __future__ import annotations

import datetime as dt
import json
import random

import numpy as np
import pytest
from PIL import Image, ImageDraw

from nanovl.train.data.common import augment
from nanovl.train.data.documents import (
    LAYOUTS, DocStyle, format_date, make_document_sample, money, random_invoice, random_style, render_invoice,
)

SEEDS = range(24)


def test_same_seed_same_sample_and_different_seed_differs():
    a, b, c = make_document_sample(7), make_document_sample(7), make_document_sample(8)
    assert a.images[0].tobytes() == b.images[0].tobytes()
    assert (a.target, a.truth, a.messages) == (b.target, b.truth, b.messages)
    assert a.images[0].tobytes() != c.images[0].tobytes()
    assert a.truth != c.truth


def test_json_target_has_fixed_keys_and_exact_total():
    for seed in SEEDS:
        s = make_document_sample(seed, question="json_items")
        data = json.loads(s.target)
        # keyed like the built-in schema of the document's kind (`nanovl extract --schema receipt`)
        number = f"{s.truth['kind']}_number"
        assert list(data) == ["vendor", number, "date", "currency", "total", "items"]
        assert data[number] == s.truth["invoice_number"]
        expected = round(sum(i["qty"] * i["unit_price"] for i in data["items"]), 2)
        assert data["total"] == pytest.approx(expected, abs=1e-9)
        assert 1 <= len(data["items"]) <= 3
        assert dt.date.fromisoformat(data["date"]).isoformat() == data["date"]
        assert data["currency"] in ("USD", "EUR", "GBP")
        assert s.truth["printed_total"].replace("$", "").replace("€", "").replace("£", "").split()[0] \
            == money(s.truth["total_cents"])


def test_plain_json_and_single_field_questions_agree():
    seed = 3
    data = json.loads(make_document_sample(seed, question="json").target)
    assert list(data) == ["vendor", "invoice_number", "date", "currency", "total"]
    assert make_document_sample(seed, question="total").target == f"{data['total']:.2f}"
    assert make_document_sample(seed, question="vendor").target == data["vendor"]
    assert make_document_sample(seed, question="date").target == data["date"]
    assert make_document_sample(seed, question="currency").target == data["currency"]
    # a forced question must not change the picture of that seed
    assert make_document_sample(seed, question="json").images[0].tobytes() == \
        make_document_sample(seed, question="total").images[0].tobytes()


def test_chat_has_one_image_marker_then_the_question():
    s = make_document_sample(1)
    user, assistant = s.messages
    assert [p["type"] for p in user["content"]] == ["image", "text"]
    assert assistant == {"role": "assistant", "content": s.target}
    assert len(s.images) == 1 and s.images[0].size == (256, 256)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_layout_stays_inside_the_page(layout):
    # ink in the outer 6 px would mean text ran off the page; the accent band may touch the sides at the top
    for seed in range(12):
        rng = random.Random(seed)
        inv = random_invoice(rng, num_items=3)
        style = DocStyle(layout, ("sans", "serif", "mono")[seed % 3], "mdy", "code", None)
        page = np.asarray(render_invoice(inv, style).convert("L"))
        assert page.min() < 50, "page is blank"
        edges = np.concatenate([page[:, :6].ravel(), page[:, -6:].ravel(), page[-6:, :].ravel(), page[:6].ravel()])
        assert edges.min() == 255, f"{layout} seed {seed} draws into the margin"


def test_large_render_scales_the_page():
    small = make_document_sample(4, augment=False)
    big = make_document_sample(4, augment=False, scale=3)
    assert big.images[0].size == (768, 768) and big.target == small.target
    # downscaled, the big render looks like the small one (same layout, fonts scaled with it)
    down = np.asarray(big.images[0].convert("L").resize((256, 256), Image.BOX), dtype=np.float32)
    assert np.abs(down - np.asarray(small.images[0].convert("L"), dtype=np.float32)).mean() < 12


def test_date_styles():
    d = dt.date(2024, 3, 12)
    assert [format_date(d, s) for s in ("iso", "dmy", "mdy")] == ["2024-03-12", "12 Mar 2024", "Mar 12, 2024"]
    with pytest.raises(ValueError):
        format_date(d, "us")


def test_augment_rotates_at_most_two_degrees():
    for seed in range(10):
        image = Image.new("RGB", (256, 256), "white")
        ImageDraw.Draw(image).rectangle([20, 126, 236, 129], fill="black")
        out = np.asarray(augment(image, random.Random(seed), max_noise=0.0).convert("L"))
        ys, xs = np.nonzero(out < 128)
        slope = np.polyfit(xs, ys, 1)[0]
        assert abs(np.degrees(np.arctan(slope))) <= 2.05


def test_augment_noise_is_the_plain_out_of_place_form():
    # the in-place noise path must keep every training and eval image the same as before, bit for bit
    from nanovl.train.data.common import numpy_rng

    page = make_document_sample(3, augment=False).images[0]
    for seed in range(8):
        rng = random.Random(seed)
        angle, sigma = rng.uniform(-2.0, 2.0), rng.uniform(0.0, 6.0)
        rotated = np.asarray(page.rotate(angle, resample=Image.BICUBIC, expand=False, fillcolor=(255, 255, 255)),
                             dtype=np.float32)
        noisy = rotated + numpy_rng(rng).normal(0.0, sigma, size=rotated.shape).astype(np.float32)
        want = np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        assert np.array_equal(np.asarray(augment(page, random.Random(seed))), want)


def test_random_style_covers_all_layouts():
    rng = random.Random(0)
    assert {random_style(rng).layout for _ in range(60)} == set(LAYOUTS)


def test_read_target_is_every_printed_line_in_reading_order():
    for seed in SEEDS:
        read = make_document_sample(seed, scale=2, question="read")
        other = make_document_sample(seed, scale=2, question="vendor")
        # the dense reading question leaves the seed's page untouched
        assert read.images[0].tobytes() == other.images[0].tobytes()
        lines, truth = read.target.split("\n"), read.truth
        assert lines[0] == truth["vendor"]  # the vendor heads every layout
        assert truth["invoice_number"] in lines[1]
        # items in order, each on its own line below the header
        rows = [next(i for i, line in enumerate(lines) if item["description"] in line.split(" ")) for item in truth["items"]]
        assert rows == sorted(rows) and rows[0] > 1
        if truth["printed_total"]:
            assert truth["printed_total"] in lines[-1]
        else:
            assert truth["items"][-1]["description"] in lines[-1]


def test_layout_without_ink_records_the_same_strings_on_a_blank_page():
    for seed in SEEDS:
        rng = random.Random(seed)
        inv, style = random_invoice(rng), random_style(rng)
        inked, dry = [], []
        render_invoice(inv, style, size=(256, 256), record=inked)
        page = render_invoice(inv, style, size=(256, 256), record=dry, ink=False)
        assert dry == inked and len(dry) >= 6
        assert page.getextrema() == ((255, 255),) * 3


def _unmark(markdown: str) -> list[str]:
    """The Markdown target's text lines with its syntax taken off (heading, table pipes, list, bold)."""
    lines = []
    for line in markdown.split("\n"):
        if not line or set(line) <= set("|-"):
            continue  # paragraph breaks and the table's separator row
        if line.startswith("|"):
            line = " ".join(cell.strip() for cell in line.strip("|").split("|"))
        lines.append(line.removeprefix("# ").removeprefix("- ").removeprefix("**").removesuffix("**"))
    return lines


def test_markdown_target_is_the_read_lines_with_structure():
    layouts = set()
    for seed in range(60):  # deterministic: fixed seeds, every layout among them
        md = make_document_sample(seed, question="markdown", augment=False)
        read = make_document_sample(seed, question="read", augment=False)
        # the same page, the same strings in the same order: only the Markdown syntax is added
        assert md.images[0].tobytes() == read.images[0].tobytes()
        assert _unmark(md.target) == read.target.split("\n"), (seed, md.target)
        truth, blocks = md.truth, md.target.split("\n\n")
        layouts.add(truth["layout"])
        assert blocks[0] == f"# {truth['vendor']}"
        if truth["layout"] == "receipt":
            items = next(b for b in blocks if b.startswith("- ")).split("\n")
        else:
            table = next(b for b in blocks if b.startswith("| Item |")).split("\n")
            assert table[1] == "|" + "---|" * table[0].count(" | ") + "---|"
            items = table[2:]
        assert len(items) == len(truth["items"])
        assert all(item["description"] in row for item, row in zip(truth["items"], items))
        if truth["printed_total"]:
            assert blocks[-1].startswith("**") and truth["printed_total"] in blocks[-1]
    assert layouts == set(LAYOUTS)
