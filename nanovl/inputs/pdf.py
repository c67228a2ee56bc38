"""PDF pages -> RGB PIL images with pypdfium2, ready for `image_to_tiles`."""
from __future__ import annotations

import io
import math
import re
import threading

import pypdfium2 as pdfium
from PIL import Image

from nanovl.inputs.errors import MediaError
from nanovl.inputs.image import DEFAULT_MAX_PIXELS, MediaSource, as_file, media_name

# PDFium is not thread-safe: every call into it holds this lock
_PDFIUM_LOCK = threading.Lock()
# a page tree node ("<</Type/Pages/Kids[...]/Count n>>") and its page count, in the raw bytes
_PAGE_TREE = re.compile(rb"<<(?:(?!>>).)*?/Type\s*/Pages\b(?:(?!>>).)*>>", re.DOTALL)
_COUNT = re.compile(rb"/Count\s+(\d+)")


def load_pdf_pages(src: MediaSource, *, dpi: float = 144, max_pages: int | None = None,
                   name: str | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[Image.Image]:
    """Render the first `max_pages` pages (all when None) at `dpi`, on a white background.

    144 dpi puts a US-letter page at 1224x1584 pixels, about 3x4 tiles of 512.

    Returns:
        list of RGB PIL images, one per page, in page order.
    Raises:
        MediaError naming the input: not a PDF, corrupt, encrypted, no pages, or a page over
        `max_pixels` at this dpi (checked before rendering).
    """
    if not (math.isfinite(dpi) and dpi > 0) or (max_pages is not None and max_pages < 1):
        raise ValueError(f"load_pdf_pages needs a finite dpi > 0 and max_pages >= 1, got {dpi}, {max_pages}")
    name = name or media_name(src, "PDF")
    fp = as_file(src, name)
    data = fp.getvalue() if isinstance(fp, io.BytesIO) else fp
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            if _declares_no_pages(data):
                raise MediaError(name, "PDF has no pages") from None
            raise MediaError(name, f"not a readable PDF ({e})") from None
        try:
            return _render(doc, name, dpi / 72.0, max_pages, max_pixels)
        except MediaError:
            raise
        except Exception as e:
            raise MediaError(name, f"corrupt PDF ({type(e).__name__}: {e})") from None
        finally:
            doc.close()


def _declares_no_pages(data) -> bool:
    """True when every page tree node of the raw PDF says /Count 0.

    PDFium refuses a well-formed PDF without pages and sets no error code of its own (the one
    it reports is left over from an earlier document), so the page tree is read here. Trees in
    compressed object streams are not seen: those PDFs keep the generic message.
    """
    if not isinstance(data, (bytes, bytearray)):
        with open(data, "rb") as f:
            data = f.read()
    counts = [int(m.group(1)) for tree in _PAGE_TREE.findall(data) for m in _COUNT.finditer(tree)]
    return bool(counts) and max(counts) == 0


def _render(doc, name: str, scale: float, max_pages: int | None, max_pixels: int) -> list[Image.Image]:
    num_pages = len(doc) if max_pages is None else min(len(doc), max_pages)
    if num_pages == 0:
        raise MediaError(name, "PDF has no pages")
    images = []
    for i in range(num_pages):
        page = doc[i]
        try:
            width, height = (round(v * scale) for v in page.get_size())
            if width <= 0 or height <= 0:
                raise MediaError(name, f"page {i + 1} is empty ({width}x{height} pixels)")
            if width * height > max_pixels:
                raise MediaError(name, f"page {i + 1} is {width}x{height} pixels at this dpi, "
                                       f"more than the limit of {max_pixels}")
            images.append(page.render(scale=scale).to_pil().convert("RGB"))
        finally:
            page.close()
    return images
