"""PDF pages -> RGB PIL images with pypdfium2, ready for `image_to_tiles`."""
from __future__ import annotations

import io
import threading

import pypdfium2 as pdfium
from PIL import Image

from nanovl.inputs.errors import MediaError
from nanovl.inputs.image import DEFAULT_MAX_PIXELS, MediaSource, as_file, media_name

# PDFium is not thread-safe: every call into it holds this lock
_PDFIUM_LOCK = threading.Lock()


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
    if not dpi > 0 or (max_pages is not None and max_pages < 1):
        raise ValueError(f"load_pdf_pages needs dpi > 0 and max_pages >= 1, got {dpi}, {max_pages}")
    name = name or media_name(src, "PDF")
    fp = as_file(src, name)
    data = fp.getvalue() if isinstance(fp, io.BytesIO) else fp
    with _PDFIUM_LOCK:
        try:
            doc = pdfium.PdfDocument(data)
        except pdfium.PdfiumError as e:
            raise MediaError(name, f"not a readable PDF ({e})") from None
        try:
            return _render(doc, name, dpi / 72.0, max_pages, max_pixels)
        except MediaError:
            raise
        except Exception as e:
            raise MediaError(name, f"corrupt PDF ({type(e).__name__}: {e})") from None
        finally:
            doc.close()


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
