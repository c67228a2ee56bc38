"""Documents -> JSON or Markdown on the public LLM API: images and PDF pages, schema-constrained.

    result = extract(llm, ["invoice.pdf"], load_schema("invoice"))
    print(result.value, result.errors)

All inputs are pages of one document, in order (a PDF adds all its pages). Extraction runs page
by page and merges (schemas.merge_pages), or in one pass over all pages when asked and the pages
fit the context. Decoding is constrained to the schema, and the result is validated against it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from PIL import Image

from nanovl.apps.schemas import extraction_prompt, merge_pages, response_format, validation_errors
from nanovl.apps.video import context_length
from nanovl.inputs.image import load_image
from nanovl.inputs.pdf import load_pdf_pages
from nanovl.sampling_params import SamplingParams

MARKDOWN_PROMPT = "Transcribe the document as Markdown."
PAGE_BREAK = "\n\n---\n\n"


@dataclass
class Extraction:
    """The merged value, its schema errors (empty when valid), and what each page gave."""

    value: Any
    errors: list[str]
    pages: list[Any] = field(default_factory=list)
    one_pass: bool = False

    @property
    def is_valid(self) -> bool:
        return not self.errors


class ExtractionError(RuntimeError):
    """The model's answer was not JSON (cut short by max_tokens, most likely)."""


def load_pages(sources: Sequence[str | Path], *, dpi: float = 144, max_pages: int | None = None) -> list[Image.Image]:
    """Images and PDFs -> one RGB image per page, in input order."""
    pages: list[Image.Image] = []
    for src in sources:
        path = Path(src)
        if path.suffix.lower() == ".pdf" or _starts_with(path, b"%PDF-"):
            pages += load_pdf_pages(str(path), dpi=dpi)
        else:
            pages.append(load_image(str(path)))
    if max_pages is not None:
        pages = pages[:max_pages]
    return pages


def _starts_with(path: Path, magic: bytes) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(len(magic)) == magic


def _page_message(pages: Sequence[Image.Image], prompt: str, max_tiles: int | None) -> list[dict]:
    parts: list[dict] = []
    for page in pages:
        part: dict[str, Any] = {"type": "image", "image": page}
        if max_tiles is not None:
            part["max_num_tiles"] = max_tiles
        parts.append(part)
    return [{"role": "user", "content": parts + [{"type": "text", "text": prompt}]}]


def _params(max_tokens: int, fmt: dict | None, thinking: bool) -> SamplingParams:
    return SamplingParams(temperature=0.0, max_tokens=max_tokens, response_format=fmt, enable_thinking=thinking)


def _parse(out) -> Any:
    try:
        return json.loads(out.text)
    except json.JSONDecodeError:
        reason = "it hit max_tokens; raise --max-tokens" if out.finish_reason == "length" else out.finish_reason
        raise ExtractionError(f"the answer is not complete JSON ({reason}): {out.text[:120]!r}") from None


def extract(llm, sources: Sequence[str | Path] | None = None, schema: dict | None = None, *,
            pages: Sequence[Image.Image] | None = None, one_pass: bool = False, max_tokens: int = 1024,
            max_tiles: int | None = None, dpi: float = 144, enable_thinking: bool = False) -> Extraction:
    """Extract `schema` from a document.

    Args:
        llm: nanovl.llm.LLM with a vision-language model.
        sources: image / PDF paths (pages of one document), or give `pages` directly.
        schema: JSON schema dict (see schemas.load_schema).
        one_pass: all pages in one prompt when they fit the context (else page by page).
        max_tiles: tiles per page image (None = the model's default).
    """
    if schema is None:
        raise ValueError("extract needs a schema")
    images = list(pages) if pages is not None else load_pages(sources or [], dpi=dpi)
    if not images:
        raise ValueError("no pages to extract from")
    prompt, fmt = extraction_prompt(schema), response_format(schema)
    params = _params(max_tokens, fmt, enable_thinking)
    if one_pass and len(images) > 1:
        messages = _page_message(images, prompt, max_tiles)
        if llm.count_tokens(messages) + max_tokens <= context_length(llm):
            value = _parse(llm.chat(messages, params)[0])
            return Extraction(value, validation_errors(value, schema), [value], one_pass=True)
    # page by page: one batch of requests, answered together by the engine
    outs = llm.chat([_page_message([img], prompt, max_tiles) for img in images], [params] * len(images))
    values = [_parse(out) for out in outs]
    value = merge_pages(values)
    return Extraction(value, validation_errors(value, schema), values)


def to_markdown(llm, sources: Sequence[str | Path] | None = None, *, pages: Sequence[Image.Image] | None = None,
                max_tokens: int = 2048, max_tiles: int | None = None, dpi: float = 144,
                enable_thinking: bool = False) -> str:
    """The full text of every page as Markdown, pages separated by horizontal rules."""
    images = list(pages) if pages is not None else load_pages(sources or [], dpi=dpi)
    if not images:
        raise ValueError("no pages to transcribe")
    params = _params(max_tokens, None, enable_thinking)
    outs = llm.chat([_page_message([img], MARKDOWN_PROMPT, max_tiles) for img in images], [params] * len(images))
    return PAGE_BREAK.join(out.text.strip() for out in outs) + "\n"
