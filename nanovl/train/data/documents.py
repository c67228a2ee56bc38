"""Synthetic invoices and receipts: random content, three layouts, DejaVu fonts sized to read at 256 px.

Amounts are kept in integer cents so totals are exact; `make_document_sample(seed)` is the task entry.
"""
from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw

from .common import FAMILIES, Sample, augment as augment_image, chat, load_font, to_json

DEFAULT_SIZE = (256, 256)
LAYOUTS = ("classic", "right", "receipt")
DATE_STYLES = ("iso", "dmy", "mdy")
CURRENCIES = {"USD": "$", "EUR": "€", "GBP": "£"}
QUESTION_KINDS = ("json", "json_items", "total", "vendor", "number", "date", "currency")
_QUESTION_WEIGHTS = (3, 2, 2, 1, 1, 1, 1)
# asked only when forced (training's reading stage); not in the seed's draw above, so every seed keeps
# the question kind (and image) it always had
READ_KIND = "read"
READ_QUESTION = "Read all the text in this document, line by line."
# the same reading, in the form `nanovl extract --markdown` asks for (apps.documents.MARKDOWN_PROMPT,
# word for word): the model learns the app's question instead of answering it with the JSON it knows
MARKDOWN_KIND = "markdown"
MARKDOWN_QUESTION = "Transcribe the document as Markdown."
_VENDOR_NAMES = ("Acme", "Bluebird", "Cedar", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juniper",
                 "Kestrel", "Lotus", "Maple", "Nova", "Orchid", "Pine", "Quartz", "Raven", "Summit", "Zenith")
_VENDOR_KINDS = ("Books", "Cafe", "Foods", "Market", "Print", "Supply", "Tools", "Labs")
_ITEMS = ("Tea", "Coffee", "Paper", "Pens", "Cable", "Lamp", "Bread", "Soap", "Tape", "Mug", "Bag", "Desk",
          "Chair", "Ink", "Rice", "Milk", "Juice", "Toner", "Stamp", "Glue")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_ACCENTS = ((20, 40, 110), (120, 20, 30), (20, 90, 50), (40, 40, 40))
_INK = (0, 0, 0)
_PAPER = (255, 255, 255)


@dataclass(frozen=True)
class LineItem:
    """One table row; money in integer cents."""

    description: str
    qty: int
    unit_cents: int

    @property
    def amount_cents(self) -> int:
        return self.qty * self.unit_cents


@dataclass(frozen=True)
class Invoice:
    """The content of one document (`kind` is "invoice" or "receipt")."""

    kind: str
    vendor: str
    number: str
    date: dt.date
    currency: str
    items: tuple[LineItem, ...]

    @property
    def total_cents(self) -> int:
        return sum(item.amount_cents for item in self.items)


@dataclass(frozen=True)
class DocStyle:
    """How an invoice is drawn; independent of its content."""

    layout: str
    family: str
    date_style: str
    money_style: str  # "symbol" ($12.00) or "code" (12.00 USD)
    accent: tuple[int, int, int] | None
    show_amounts: bool = True
    show_total: bool = True


def money(cents: int) -> str:
    """Cents as the printed decimal string: 1950 -> "19.50"."""
    return f"{cents // 100}.{cents % 100:02d}"


def format_date(date: dt.date, style: str) -> str:
    """Print a date as "2024-03-12" (iso), "12 Mar 2024" (dmy) or "Mar 12, 2024" (mdy)."""
    if style == "iso":
        return date.isoformat()
    if style == "dmy":
        return f"{date.day} {_MONTHS[date.month - 1]} {date.year}"
    if style == "mdy":
        return f"{_MONTHS[date.month - 1]} {date.day}, {date.year}"
    raise ValueError(f"date style must be one of {DATE_STYLES}, got {style!r}")


def random_invoice(rng: random.Random, *, num_items: int | None = None, currency: str | None = None) -> Invoice:
    """Draw invoice content: vendor, short number, date, currency and 1-3 distinct line items."""
    kind = rng.choice(("invoice", "receipt"))
    vendor = f"{rng.choice(_VENDOR_NAMES)} {rng.choice(_VENDOR_KINDS)}"
    number = rng.choice(("INV-{}", "A-{}", "B{}", "{}")).format(rng.randint(100, 9999))
    date = dt.date(2020, 1, 1) + dt.timedelta(days=rng.randint(0, 6 * 365))
    currency = currency or rng.choice(tuple(CURRENCIES))
    n = num_items or rng.randint(1, 3)
    names = rng.sample(_ITEMS, n)
    # half the prices are whole units: easier to read, and totals still need real addition
    items = tuple(LineItem(name, rng.randint(1, 9), rng.randint(1, 99) * 100 if rng.random() < 0.5
                           else rng.randint(50, 9999)) for name in names)
    return Invoice(kind, vendor, number, date, currency, items)


def random_style(rng: random.Random) -> DocStyle:
    """Draw a layout, font family, date and money style, and an optional accent colour."""
    layout = rng.choice(LAYOUTS)
    family = "mono" if layout == "receipt" and rng.random() < 0.6 else rng.choice(FAMILIES)
    accent = rng.choice(_ACCENTS) if rng.random() < 0.4 else None
    return DocStyle(layout, family, rng.choice(DATE_STYLES), rng.choice(("symbol", "code")), accent)


def total_text(invoice: Invoice, style: DocStyle) -> str:
    """The printed total with its currency: "$19.50" or "19.50 USD"."""
    if style.money_style == "symbol":
        return f"{CURRENCIES[invoice.currency]}{money(invoice.total_cents)}"
    return f"{money(invoice.total_cents)} {invoice.currency}"


class _Pen:
    """Draws in base (scale 1) coordinates; every position and font size is multiplied by `scale`."""

    def __init__(self, image: Image.Image, family: str, scale: int, record: list | None = None,
                 ink: bool = True):
        self.draw = ImageDraw.Draw(image)
        self.family, self.scale = family, scale
        # (top y, left x, text) of every string drawn, in base coordinates, when a list is given
        self.record = record
        # False: measure and record only; text tiles want the strings, and rasterizing them was
        # ~31 % of a text-tile worker's time (docs/TRAINING_NOTES.md section 14)
        self.ink = ink

    def font(self, size: int, bold: bool = False):
        return load_font(self.family, size * self.scale, bold)

    def text(self, x: float, y: float, s: str, size: int, *, bold=False, anchor="la", fill=_INK) -> None:
        k = self.scale
        if self.ink:
            self.draw.text((x * k, y * k), s, font=self.font(size, bold), fill=fill, anchor=anchor)
        if self.record is not None:
            w = self.width(s, size, bold)
            left = x - w if anchor[0] == "r" else x - w / 2 if anchor[0] == "m" else x
            self.record.append((y, left, s))

    def width(self, s: str, size: int, bold: bool = False) -> float:
        return self.draw.textlength(s, font=self.font(size, bold)) / self.scale

    def fit(self, s: str, size: int, max_width: float, bold: bool = True) -> int:
        # long vendor names shrink instead of running into the other column
        while size > 10 and self.width(s, size, bold) > max_width:
            size -= 1
        return size

    def hline(self, x0: float, x1: float, y: float, *, dashed: bool = False) -> None:
        if not self.ink:
            return
        k, step = self.scale, (6 if dashed else x1 - x0)
        x = x0
        while x < x1:
            end = min(x + (step * 0.6 if dashed else step), x1)
            self.draw.line([(x * k, y * k), (end * k, y * k)], fill=_INK, width=k)
            x += step

    def band(self, y0: float, y1: float, width: float, fill) -> None:
        if not self.ink:
            return
        k = self.scale
        self.draw.rectangle([0, y0 * k, width * k, y1 * k], fill=fill)


def _header(pen: _Pen, inv: Invoice, style: DocStyle, w: float, m: float) -> float:
    """Vendor, title, number and date for the classic/right layouts; returns the y below them."""
    title, date = inv.kind.upper(), format_date(inv.date, style.date_style)
    ink = _INK
    if style.accent:
        pen.band(0, 36, w, style.accent)
        ink = _PAPER
    size = pen.fit(inv.vendor, 20, w - 2 * m)
    if style.layout == "classic":
        pen.text(m, 8, inv.vendor, size, bold=True, fill=ink)
        pen.text(m, 44, title, 14, bold=True)
        pen.text(w - m, 44, f"No. {inv.number}", 13, anchor="ra")
        pen.text(m, 64, f"Date: {date}", 13)
    else:
        pen.text(w - m, 8, inv.vendor, size, bold=True, anchor="ra", fill=ink)
        pen.text(m, 44, title, 14, bold=True)
        pen.text(w - m, 44, f"No. {inv.number}", 13, anchor="ra")
        pen.text(w - m, 64, date, 13, anchor="ra")
    return 92


def _table(pen: _Pen, inv: Invoice, style: DocStyle, w: float, m: float, y: float) -> float:
    """Item table with right-aligned number columns; returns the y below the closing rule."""
    if style.show_amounts:
        cols = (("Qty", 0.45 * w), ("Price", 0.69 * w), ("Amt", w - m))
    else:
        cols = (("Qty", 0.60 * w), ("Price", w - m))
    pen.text(m, y, "Item", 13, bold=True)
    for name, right in cols:
        pen.text(right, y, name, 13, bold=True, anchor="ra")
    pen.hline(m, w - m, y + 18)
    y += 23
    for item in inv.items:
        values = (str(item.qty), money(item.unit_cents), money(item.amount_cents))
        pen.text(m, y, item.description, 13)
        for (_, right), value in zip(cols, values):
            pen.text(right, y, value, 13, anchor="ra")
        y += 19
    pen.hline(m, w - m, y + 1)
    return y + 8


def _draw_boxed(pen: _Pen, inv: Invoice, style: DocStyle, w: float) -> None:
    m = 12
    y = _table(pen, inv, style, w, m, _header(pen, inv, style, w, m))
    if style.show_total:
        if style.layout == "classic":
            pen.text(w - m, y, f"Total: {total_text(inv, style)}", 15, bold=True, anchor="ra")
        else:
            pen.text(m, y, f"TOTAL {total_text(inv, style)}", 15, bold=True)


def _draw_receipt(pen: _Pen, inv: Invoice, style: DocStyle, w: float) -> None:
    m, c = 14, w / 2
    size = pen.fit(inv.vendor, 19, w - 2 * m)
    if style.accent:
        pen.band(0, 34, w, style.accent)
    pen.text(c, 8, inv.vendor, size, bold=True, anchor="ma", fill=_PAPER if style.accent else _INK)
    pen.text(c, 42, f"{inv.kind.upper()} {inv.number}", 13, bold=True, anchor="ma")
    pen.text(c, 60, format_date(inv.date, style.date_style), 13, anchor="ma")
    pen.hline(m, w - m, 82, dashed=True)
    y = 90
    for item in inv.items:
        pen.text(m, y, f"{item.qty} x {item.description} @ {money(item.unit_cents)}", 13)
        if style.show_amounts:
            pen.text(w - m, y, money(item.amount_cents), 13, anchor="ra")
        y += 20
    pen.hline(m, w - m, y + 2, dashed=True)
    if style.show_total:
        pen.text(m, y + 10, "TOTAL", 15, bold=True)
        pen.text(w - m, y + 10, total_text(inv, style), 15, bold=True, anchor="ra")


def render_invoice(invoice: Invoice, style: DocStyle, *, size: tuple[int, int] = DEFAULT_SIZE,
                   scale: int = 1, record: list | None = None, ink: bool = True) -> Image.Image:
    """Draw `invoice` in `style` on a white page.

    Args:
        size: (width, height) of the page at scale 1; 256x256 holds three items.
        scale: integer upscale of page and fonts, e.g. 3 for a crisp README sample.
        record: if given, receives (top y, left x, text) of every string drawn (see `text_lines`).
        ink: False draws nothing, only fills `record` (the same entries): a blank page comes back.
    Returns:
        RGB image of (width * scale, height * scale).
    """
    if style.layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {style.layout!r}")
    w, h = size
    if w < 200 or h < 200:
        raise ValueError(f"page size must be at least 200x200 to fit the table, got {size}")
    image = Image.new("RGB", (w * scale, h * scale), _PAPER)
    pen = _Pen(image, style.family, scale, record, ink)
    (_draw_receipt if style.layout == "receipt" else _draw_boxed)(pen, invoice, style, w)
    return image


def text_rows(record: list[tuple[float, float, str]]) -> list[list[str]]:
    """The drawn strings as printed rows, top to bottom: strings drawn at one y form a row, left to right."""
    rows: dict[float, list[tuple[float, str]]] = {}
    for y, x, text in record:
        rows.setdefault(y, []).append((x, text))
    return [[t for _, t in sorted(parts)] for _, parts in sorted(rows.items())]


def text_lines(record: list[tuple[float, float, str]]) -> list[str]:
    """The printed lines (`text_rows` joined by spaces)."""
    return [" ".join(row) for row in text_rows(record)]


def markdown_text(record: list[tuple[float, float, str]]) -> str:
    """The printed rows as Markdown: the vendor as a heading, the item table as a table (receipts'
    item lines as a list), the total in bold, every other row its own paragraph; the strings are
    exactly the printed ones (`text_rows`), so a perfect transcription reads every glyph."""
    rows = text_rows(record)
    blocks, i = [f"# {' '.join(rows[0])}"] if rows else [], 1
    while i < len(rows):
        cells = rows[i]
        if cells[0] == "Item":  # a boxed layout's table: its rows have one cell per column
            table = ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]
            i += 1
            while i < len(rows) and len(rows[i]) == len(cells):
                table.append("| " + " | ".join(rows[i]) + " |")
                i += 1
            blocks.append("\n".join(table))
            continue
        if _receipt_item(cells):
            items = []
            while i < len(rows) and _receipt_item(rows[i]):
                items.append("- " + " ".join(rows[i]))
                i += 1
            blocks.append("\n".join(items))
            continue
        line = " ".join(cells)
        blocks.append(f"**{line}**" if line.upper().startswith("TOTAL") else line)
        i += 1
    return "\n\n".join(blocks)


def _receipt_item(cells: list[str]) -> bool:
    """A receipt's item line, as `_draw_receipt` prints it: "2 x Tea @ 4.50" [amount]."""
    return " x " in cells[0] and " @ " in cells[0]


def invoice_fields(invoice: Invoice, *, with_items: bool = False) -> dict:
    """The extraction fields in their fixed key order; date ISO, total a number."""
    out = {"vendor": invoice.vendor, "invoice_number": invoice.number, "date": invoice.date.isoformat(),
           "currency": invoice.currency, "total": invoice.total_cents / 100}
    if with_items:
        out["items"] = [{"description": i.description, "qty": i.qty, "unit_price": i.unit_cents / 100}
                        for i in invoice.items]
    return out


def number_key(invoice: Invoice) -> str:
    """The document number's key in the built-in extraction schema of its kind (apps/builtin_schemas)."""
    return f"{invoice.kind}_number"


def schema_fields(invoice: Invoice) -> dict:
    """The fields as `nanovl extract --schema <kind>` returns them: the built-in schema of the document's
    kind (invoice.json / receipt.json), in its key order, line items included; what the grammar-
    constrained app writes for a perfect reading (compact JSON of this dict, see common.to_json)."""
    out = invoice_fields(invoice, with_items=True)
    return {number_key(invoice) if k == "invoice_number" else k: v for k, v in out.items()}


def invoice_truth(invoice: Invoice, style: DocStyle) -> dict:
    """All ground truth of one rendered document."""
    truth = invoice_fields(invoice, with_items=True)
    truth.update(kind=invoice.kind, total_cents=invoice.total_cents, layout=style.layout,
                 printed_total=total_text(invoice, style) if style.show_total else None)
    return truth


def _question(invoice: Invoice, kind: str) -> tuple[str, str]:
    doc = invoice.kind
    if kind == "json":
        return f"Extract the {doc} as JSON.", to_json(invoice_fields(invoice))
    if kind == "json_items":
        # the prompt and answer of `nanovl extract --schema <kind>` (apps.schemas.extraction_prompt of the
        # built-in schema): a receipt's number is "receipt_number" there, as in receipt.json
        return f"Extract the {doc} as JSON, including the line items.", to_json(schema_fields(invoice))
    answers = {
        "total": ("What is the total?", money(invoice.total_cents)),
        "vendor": ("Who is the vendor?", invoice.vendor),
        "number": (f"What is the {doc} number?", invoice.number),
        "date": (f"What is the {doc} date? Answer in YYYY-MM-DD format.", invoice.date.isoformat()),
        "currency": ("Which currency is used? Answer with the ISO code.", invoice.currency),
    }
    if kind not in answers:
        raise ValueError(f"question kind must be one of {QUESTION_KINDS}, got {kind!r}")
    return answers[kind]


def make_document_sample(seed: int, *, size: tuple[int, int] = DEFAULT_SIZE, scale: int = 1,
                         augment: bool = True, question: str | None = None) -> Sample:
    """One invoice/receipt image with an extraction or single-field question.

    Args:
        seed: reproduces the sample exactly (same image bytes, same target).
        size: page size at scale 1.
        scale: render upscale (fonts included) for large samples.
        augment: rotate (<= 2 degrees) and add noise.
        question: one of QUESTION_KINDS, READ_KIND (every printed line) or MARKDOWN_KIND (the same as
            Markdown); drawn from the seed when None.
    """
    return make_document_samples(seed, [question], size=size, scale=scale, augment=augment)[0]


def make_document_samples(seed: int, questions: Sequence[str | None], *, size: tuple[int, int] = DEFAULT_SIZE,
                          scale: int = 1, augment: bool = True) -> list[Sample]:
    """`make_document_sample` once per question, all of one page drawn and augmented once.

    Rendering and augmenting are most of a page sample's cost, so training may ask a page several
    questions; the first sample is exactly `make_document_sample(seed, question=questions[0])`.
    """
    rng = random.Random(seed)
    invoice, style = random_invoice(rng), random_style(rng)
    # always draw the kind so a forced question leaves the image of that seed unchanged
    drawn = rng.choices(QUESTION_KINDS, weights=_QUESTION_WEIGHTS)[0]
    kinds = [question or drawn for question in questions]
    record: list | None = [] if READ_KIND in kinds or MARKDOWN_KIND in kinds else None
    image = render_invoice(invoice, style, size=size, scale=scale, record=record)
    if augment:
        image = augment_image(image, rng)
    truth = invoice_truth(invoice, style)
    out = []
    for kind in kinds:
        if kind == READ_KIND:
            text, target = READ_QUESTION, "\n".join(text_lines(record))
        elif kind == MARKDOWN_KIND:
            text, target = MARKDOWN_QUESTION, markdown_text(record)
        else:
            text, target = _question(invoice, kind)
        out.append(Sample("document", chat(text, target, num_images=1), target, truth | {"question_kind": kind},
                          images=[image], seed=seed))
    return out
