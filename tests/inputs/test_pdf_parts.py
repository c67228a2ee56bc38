"""PDFs in chat messages: an image part whose source is a PDF (path, file:// URL, bytes or an
application/pdf data URI) reads as its pages, each an image part, with a page limit that refuses
rather than cuts a document short.

Run: pytest tests/inputs/test_pdf_parts.py
"""
from __future__ import annotations

import base64
import copy

import pytest
import torch
from PIL import Image, ImageDraw

from nanovl.inputs.errors import MediaError
from nanovl.inputs.pdf import load_pdf_pages
from nanovl.inputs.pdf_parts import PAGE_DPI, expand_pdf_parts
from nanovl.llm import LLM


@pytest.fixture(scope="module")
def llm():
    return LLM()


def _pdf(path, num_pages: int) -> str:
    pages = []
    for k in range(num_pages):
        page = Image.new("RGB", (160, 200), "white")
        ImageDraw.Draw(page).text((20, 20 + 30 * k), f"PAGE {k + 1}", fill="black")
        pages.append(page)
    pages[0].save(path, save_all=True, append_images=pages[1:], resolution=72.0)
    return str(path)


def _ask(part) -> list[dict]:
    return [{"role": "user", "content": [part, {"type": "text", "text": "What does the document say?"}]}]


def _image_part(src, **options) -> dict:
    return {"type": "image_url", "image_url": {"url": src, **options}}


def test_a_pdf_reads_as_its_pages_from_every_kind_of_source(llm, tmp_path):
    path = _pdf(tmp_path / "doc.pdf", 2)
    raw = open(path, "rb").read()
    pages = load_pdf_pages(path, dpi=PAGE_DPI)
    want = llm.processor.process_chat([{"role": "user", "content": [
        *({"type": "image", "image": p} for p in pages), {"type": "text", "text": "What does the document say?"}]}])
    b64 = base64.b64encode(raw).decode()
    # browsers send a PDF of unknown type as "" or application/octet-stream: its magic decides
    sources = [path, f"file://{path}", raw, f"data:application/pdf;base64,{b64}", f"data:;base64,{b64}",
               f"data:application/octet-stream;base64,{b64}"]
    for src in sources:
        got = llm.processor.process_chat(_ask(_image_part(src)))
        assert got.prompt_token_ids == want.prompt_token_ids
        assert len(got.mm_input.items) == 2
        for a, b in zip(got.mm_input.items, want.mm_input.items):
            assert torch.equal(a.pixel_values, b.pixel_values)


def test_options_reach_every_page_and_the_callers_messages_stay(tmp_path):
    messages = _ask(_image_part(_pdf(tmp_path / "doc.pdf", 3), max_num_tiles=2))
    before = copy.deepcopy(messages)
    parts = expand_pdf_parts(messages)[0]["content"]
    assert [p["type"] for p in parts] == ["image", "image", "image", "text"]
    assert all(p["max_num_tiles"] == 2 for p in parts[:3])
    assert messages == before
    plain = _ask(_image_part("picture.png"))
    assert expand_pdf_parts(plain) == plain


def test_a_document_over_its_page_limit_is_refused_not_cut(tmp_path):
    path = _pdf(tmp_path / "doc.pdf", 3)
    assert len(expand_pdf_parts(_ask(_image_part(path, max_pages=3)))[0]["content"]) == 4
    with pytest.raises(MediaError, match="more than 2 pages; pass max_pages"):
        expand_pdf_parts(_ask(_image_part(path, max_pages=2)))
    with pytest.raises(MediaError, match="max_pages must be an integer from 1 to 64"):
        expand_pdf_parts(_ask(_image_part(path, max_pages=0)))
    with pytest.raises(MediaError, match="not a readable PDF"):
        expand_pdf_parts(_ask(_image_part(b"%PDF-1.4\n%%EOF\n")))
