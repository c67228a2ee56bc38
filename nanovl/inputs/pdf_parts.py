"""PDF documents in chat messages: an image part whose source is a PDF becomes one image part per page.

The model reads pages as images (SPEC: documents are tiled like any picture), so a PDF given as
`image_url` (a file, bytes, or a data URI of type application/pdf) expands, before the chat
template runs, into its pages in order. The part's other keys (max_num_tiles, ...) go to every page.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence
from urllib.parse import unquote, urlparse

from nanovl.inputs.errors import MediaError

DEFAULT_MAX_PAGES = 16
MOST_PAGES = 64
# 144 dpi puts a US-letter page at about 3x4 tiles of 512, the resolution the tiler wants
PAGE_DPI = 144.0
IMAGE_PARTS = {"image_url": "image_url", "image": "image"}


def expand_pdf_parts(messages: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """`messages` with every PDF image part replaced by its pages as image parts (a new list; the
    caller's messages are not changed). Messages without a PDF come back as they are.

    Raises:
        MediaError naming the part: unreadable PDF, or more pages than its `max_pages`
        (default 16, at most 64): a document is never cut short silently.
    """
    out: list[Mapping[str, Any]] = []
    k = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else None
        if not isinstance(content, list):
            out.append(message)
            continue
        parts = []
        for part in content:
            key = IMAGE_PARTS.get(part.get("type")) if isinstance(part, Mapping) else None
            if key is None:
                parts.append(part)
                continue
            k += 1
            source = _source_of(part[key]) if key in part else None
            parts += _pages(part, key, source, k) if is_pdf_source(source) else [part]
        out.append({**message, "content": parts})
    return out


def _source_of(value: Any) -> Any:
    # image_url parts hold {"url": ...}; "image" parts hold the source itself
    return value.get("url") if isinstance(value, Mapping) else value


def is_pdf_source(src: Any) -> bool:
    """True for a path, file:// URL, bytes or data URI that holds a PDF (by type, suffix or magic)."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src[:5]) == b"%PDF-"
    if not isinstance(src, str):
        return False
    if src.startswith("data:"):
        header, _, payload = src[5:].partition(",")
        # browsers label a PDF with no known type "" or application/octet-stream: read its magic
        # ("%PDF-" is "JVBERi0" in base64)
        return (header.split(";")[0].strip().lower() == "application/pdf"
                or payload.lstrip().startswith("JVBERi0" if header.endswith(";base64") else "%PDF-"))
    if urlparse(src).scheme.lower() not in ("", "file"):
        return False  # remote URLs are the server's to fetch (or refuse); a fetched PDF arrives as bytes
    path = unquote(urlparse(src).path) if src.startswith("file://") else src
    if path.lower().endswith(".pdf"):
        return True
    try:
        with Path(path).open("rb") as f:
            return f.read(5) == b"%PDF-"
    except (OSError, ValueError):
        return False


def _pages(part: Mapping[str, Any], key: str, source: Any, k: int) -> list[dict[str, Any]]:
    name = f"image #{k} (PDF)"
    options = dict(part[key]) if isinstance(part[key], Mapping) else {}
    options.pop("url", None)
    limit = options.pop("max_pages", DEFAULT_MAX_PAGES)
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MOST_PAGES:
        raise MediaError(name, f"max_pages must be an integer from 1 to {MOST_PAGES}, got {limit!r:.40}")
    if isinstance(source, str) and source.startswith("file://"):
        source = unquote(urlparse(source).path)
    # imported here: the engine imports this module, and a prompt without a PDF needs no pypdfium2
    from nanovl.inputs.pdf import load_pdf_pages

    pages = load_pdf_pages(source, dpi=PAGE_DPI, max_pages=limit + 1, name=name)
    if len(pages) > limit:
        raise MediaError(name, f"the document has more than {limit} pages; pass max_pages (up to {MOST_PAGES}) "
                               "to read more, or send the pages you need")
    return [{"type": "image", "image": page, **options} for page in pages]
