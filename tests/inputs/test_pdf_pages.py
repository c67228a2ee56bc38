"""load_pdf_pages on PDFs written by PIL; run: pytest tests/inputs/test_pdf_pages.py"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from nanovl.inputs.errors import MediaError
from nanovl.inputs.pdf import load_pdf_pages


def make_pdf():
    """Two pages at 72 dpi (1 px = 1 pt): red 200x100 pt, blue 100x300 pt."""
    pages = [Image.new("RGB", (200, 100), (255, 0, 0)), Image.new("RGB", (100, 300), (0, 0, 255))]
    buf = io.BytesIO()
    pages[0].save(buf, "PDF", save_all=True, append_images=pages[1:], resolution=72)
    return buf.getvalue()


def near(image, xy, rgb):
    return np.abs(np.asarray(image.getpixel(xy), dtype=int) - rgb).max() <= 8


def test_pages_sizes_and_colours(tmp_path):
    path = tmp_path / "doc.pdf"
    path.write_bytes(make_pdf())
    for src in (path, make_pdf()):
        pages = load_pdf_pages(src)  # 144 dpi = scale 2
        assert [p.size for p in pages] == [(400, 200), (200, 600)]
        assert all(p.mode == "RGB" for p in pages)
        assert near(pages[0], (200, 100), (255, 0, 0)) and near(pages[1], (100, 300), (0, 0, 255))


def test_dpi_and_max_pages():
    pages = load_pdf_pages(make_pdf(), dpi=36, max_pages=1)
    assert [p.size for p in pages] == [(100, 50)]


def _raises(src, *words, **kw):
    with pytest.raises(MediaError) as info:
        load_pdf_pages(src, **kw)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_bad_pdfs(tmp_path):
    _raises(b"%PDF-1.4 not really", "PDF bytes", "not a readable PDF")
    _raises(make_pdf()[:100], "PDF bytes")
    _raises(b"", "empty input")
    text = tmp_path / "a.txt"
    text.write_text("hello")
    _raises(text, str(text), "not a readable PDF")
    _raises(tmp_path / "missing.pdf", "no such file")
    _raises(b"junk", "report.pdf", name="report.pdf")


def test_page_pixel_limit():
    _raises(make_pdf(), "page 1", "limit of 50000", max_pixels=50_000)
    _raises(make_pdf(), "page 2", "limit of 100000", max_pixels=100_000)  # page 1 is 80000


def test_pdf_without_pages(tmp_path):
    import pypdfium2 as pdfium

    buf = io.BytesIO()
    pdfium.PdfDocument.new().save(buf)  # a well-formed PDF with /Count 0
    assert b"/Count 0" in buf.getvalue()
    _raises(buf.getvalue(), "PDF has no pages", name="empty.pdf")
    path = tmp_path / "empty.pdf"
    path.write_bytes(buf.getvalue())
    _raises(path, str(path), "PDF has no pages")
    # a broken PDF is still called unreadable, even right after an empty one
    _raises(b"%PDF-1.4 not really", "not a readable PDF")


@pytest.mark.parametrize("dpi", [float("inf"), float("nan"), 0, -5])
def test_bad_dpi_is_a_value_error(dpi):
    with pytest.raises(ValueError, match="dpi"):
        load_pdf_pages(make_pdf(), dpi=dpi)
