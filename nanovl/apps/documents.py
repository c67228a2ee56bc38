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
    """The merged value, its schema errors (empty when valid), and what each page gave.

    `failed` names the pages whose answer was not JSON and why ("page 2 (scan.pdf page 2): ...");
    their entry in `pages` is None and `value` merges the pages that parsed.
    """

    value: Any
    errors: list[str]
    pages: list[Any] = field(default_factory=list)
    one_pass: bool = False
    failed: list[str] = field(default_factory=list)

    @property
    def is_valid(self) -> bool:
        return not self.errors and not self.failed


class ExtractionError(RuntimeError):
    """The model's answer was not JSON (cut short by max_tokens, most likely)."""


def load_pages(sources: Sequence[str | Path], *, dpi: float = 144, max_pages: int | None = None) -> list[Image.Image]:
    """Images and PDFs -> one RGB image per page, in input order (the first `max_pages` only)."""
    return load_labeled_pages(sources, dpi=dpi, max_pages=max_pages)[0]


def load_labeled_pages(sources: Sequence[str | Path], *, dpi: float = 144, names: Sequence[str] | None = None,
                       max_pages: int | None = None) -> tuple[list[Image.Image], list[str]]:
    """load_pages, plus a label per page that errors can name: "page 3 (scan.pdf page 2)".

    `names` are what the user calls each source (a URL rather than its downloaded copy). Pages past
    `max_pages` are never rendered, so a long PDF costs only the pages used.
    """
    pages: list[Image.Image] = []
    labels: list[str] = []
    for i, src in enumerate(sources):
        left = None if max_pages is None else max_pages - len(pages)
        if left is not None and left <= 0:
            break
        path, name = Path(src), str(names[i] if names is not None else src)
        if path.suffix.lower() == ".pdf" or _starts_with(path, b"%PDF-"):
            doc = load_pdf_pages(str(path), dpi=dpi, max_pages=left)
            pages += doc
            labels += [f"{name} page {k}" for k in range(1, len(doc) + 1)]
        else:
            pages.append(load_image(str(path)))
            labels.append(name)
    return pages, [f"page {n} ({label})" for n, label in enumerate(labels, 1)]


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
            max_tiles: int | None = None, dpi: float = 144, enable_thinking: bool = False,
            page_names: Sequence[str] | None = None) -> Extraction:
    """Extract `schema` from a document.

    Args:
        llm: nanovl.llm.LLM with a vision-language model.
        sources: image / PDF paths (pages of one document), or give `pages` directly.
        schema: JSON schema dict (see schemas.load_schema).
        one_pass: all pages in one prompt when they fit the context (else page by page).
        max_tiles: tiles per page image (None = the model's default).
        page_names: how errors name each page (see load_labeled_pages); default "page N".
    Returns:
        Extraction; pages whose answer is not JSON are listed in `failed`, the rest still merged.
    Raises:
        ExtractionError naming the page(s) when no page's answer is JSON.
    """
    if schema is None:
        raise ValueError("extract needs a schema")
    if pages is not None:
        images = list(pages)
    else:
        images, labels = load_labeled_pages(sources or [], dpi=dpi)
        page_names = page_names or labels
    if not images:
        raise ValueError("no pages to extract from")
    names = list(page_names or [f"page {n}" for n in range(1, len(images) + 1)])
    prompt, fmt = extraction_prompt(schema), response_format(schema)
    params = _params(max_tokens, fmt, enable_thinking)
    if one_pass and len(images) > 1:
        messages = _page_message(images, prompt, max_tiles)
        if llm.count_tokens(messages) + max_tokens <= context_length(llm):
            try:
                value = _parse(llm.chat(messages, params)[0])
            except ExtractionError as e:
                raise ExtractionError(f"{len(images)} pages in one pass: {e}") from None
            return Extraction(value, validation_errors(value, schema), [value], one_pass=True)
    # page by page: one batch of requests, answered together by the engine
    outs = llm.chat([_page_message([img], prompt, max_tiles) for img in images], [params] * len(images))
    values, failed = [], []
    for name, out in zip(names, outs):
        try:
            values.append(_parse(out))
        except ExtractionError as e:
            # one page cut short must not cost the others their answers
            values.append(None)
            failed.append(f"{name}: {e}")
    if len(failed) == len(outs):
        raise ExtractionError("; ".join(failed))
    value = merge_pages(values)
    return Extraction(value, validation_errors(value, schema), values, failed=failed)


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
