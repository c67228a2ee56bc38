"""Document extraction: built-in schemas fit the ground truth, page merging, schema-valid JSON from
images and PDFs (random model), and exact content with the trained tiny model."""
from __future__ import annotations

import json

import pytest

from nanovl.apps.documents import extract, load_pages, to_markdown
from nanovl.apps.schemas import (SchemaError, extraction_prompt, load_schema, merge_pages,
                                 validation_errors)
from nanovl.train.data.documents import make_document_sample
from nanovl.train.samples import RENDER_SCALE
from helpers import needs_reading_model

# documents the trained model reads come from seeds training (0 up) and the eval (1e9 up) never draw
HELD_OUT = 1_500_000_100


def _truth(sample) -> dict:
    """The extraction fields of a sample, keyed like the schema of its kind."""
    keys = ("vendor", "invoice_number", "date", "currency", "total", "items")
    out = {k: sample.truth[k] for k in keys}
    if sample.truth["kind"] == "receipt":
        out["receipt_number"] = out.pop("invoice_number")
        out = {k: out[k] for k in ("vendor", "receipt_number", "date", "currency", "total", "items")}
    return out


def _sample(kind: str, start: int = 0, scale: int = 1):
    seed = start
    while (s := make_document_sample(seed, scale=scale, augment=False, question="json_items")).truth["kind"] != kind:
        seed += 1
    return s


def _two_page_pdf(sample, path):
    # the invoice and its "copy" page: page-wise extraction must not double the line items
    image = sample.images[0]
    image.save(path, save_all=True, append_images=[image.copy()], resolution=72.0)
    return path


@pytest.mark.parametrize("seed", range(12))
def test_builtin_schemas_accept_the_ground_truth(seed):
    sample = make_document_sample(seed, augment=False)
    schema = load_schema(sample.truth["kind"])
    assert validation_errors(_truth(sample), schema) == []


def test_validation_catches_bad_values():
    schema = load_schema("invoice")
    good = _truth(_sample("invoice"))
    assert validation_errors({**good, "date": "31/07/2020"}, schema)[0].startswith("date:")
    assert validation_errors({**good, "currency": "usd"}, schema)[0].startswith("currency:")
    assert validation_errors({**good, "total": 10.005}, schema)[0].startswith("total:")
    assert validation_errors({**good, "items": [{"description": "x", "qty": 1}]}, schema)[0].startswith("items/0")


def test_load_schema_errors(tmp_path):
    with pytest.raises(SchemaError, match="neither a built-in"):
        load_schema("passport")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SchemaError, match="not a JSON file"):
        load_schema(str(bad))
    bad.write_text(json.dumps({"type": "no-such-type"}))
    with pytest.raises(SchemaError, match="invalid JSON schema"):
        load_schema(str(bad))


def test_extraction_prompt_follows_training_wording():
    assert extraction_prompt(load_schema("invoice")) == "Extract the invoice as JSON, including the line items."
    assert extraction_prompt({"type": "object", "properties": {"a": {}, "b": {}}}) == \
        "Extract the document as JSON with the fields a, b."


def test_merge_pages():
    pages = [{"vendor": "Acme", "number": None, "items": [{"d": "Tea"}, {"d": "Tea"}], "meta": {"p": 1}},
             {"vendor": "Other", "number": "17", "items": [{"d": "Tea"}, {"d": "Ink"}], "meta": {"q": 2}},
             None]
    assert merge_pages(pages) == {"vendor": "Acme", "number": "17",
                                  "items": [{"d": "Tea"}, {"d": "Tea"}, {"d": "Ink"}], "meta": {"p": 1, "q": 2}}
    assert merge_pages([None, None]) is None


def test_random_model_png_and_pdf_give_schema_valid_json(random_llm, tmp_path):
    sample = _sample("invoice")
    png = tmp_path / "invoice.png"
    sample.images[0].save(png)
    pdf = _two_page_pdf(sample, tmp_path / "invoice.pdf")
    schema = load_schema("invoice")
    assert len(load_pages([str(pdf)], dpi=72)) == 2
    single = extract(random_llm, [str(png)], schema, max_tokens=600)
    assert single.errors == [] and set(single.value) == set(schema["properties"])
    paged = extract(random_llm, [str(pdf)], schema, dpi=72, max_tokens=600)
    assert paged.errors == [] and len(paged.pages) == 2 and not paged.one_pass
    together = extract(random_llm, [str(pdf)], schema, dpi=72, max_tokens=600, one_pass=True)
    assert together.one_pass and together.errors == []
    # the same page twice: the merge keeps one copy of every line item
    assert paged.value["items"] == paged.pages[0]["items"]


def test_markdown_has_one_section_per_page(random_llm, tmp_path):
    pdf = _two_page_pdf(_sample("invoice"), tmp_path / "doc.pdf")
    text = to_markdown(random_llm, [str(pdf)], dpi=72, max_tokens=8)
    assert text.count("\n---\n") == 1


# v11 reads this invoice's number B6659 as B6059 (v10 read it right, and misread the receipt's 93.0 that v11
# reads; on 50 held-out invoices v11 reads 96 % of numbers, on 300 pages 92.2 % of items, v10 89.4 %)
@pytest.mark.parametrize("kind", [pytest.param("invoice", marks=needs_reading_model), "receipt"])
def test_trained_model_extracts_the_ground_truth(trained_llm, tmp_path, kind):
    # the trained model reads pages drawn at the training render scale (512 px)
    sample = _sample(kind, start=HELD_OUT, scale=RENDER_SCALE)
    png = tmp_path / f"{kind}.png"
    sample.images[0].save(png)
    result = extract(trained_llm, [str(png)], load_schema(kind))
    assert result.errors == []
    assert result.value == _truth(sample)


def test_trained_model_two_page_pdf_equals_ground_truth(trained_llm, tmp_path):
    sample = _sample("invoice", start=HELD_OUT + 100, scale=RENDER_SCALE)
    pdf = _two_page_pdf(sample, tmp_path / "two_pages.pdf")
    result = extract(trained_llm, [str(pdf)], load_schema("invoice"), dpi=72)
    assert result.errors == []
    assert result.value == _truth(sample)


def test_load_pages_renders_only_the_pages_it_returns(tmp_path, monkeypatch):
    # max_pages used to render every page of every PDF and slice afterwards
    from nanovl.apps import documents

    sample = _sample("invoice")
    pdf = _two_page_pdf(sample, tmp_path / "invoice.pdf")
    png = tmp_path / "invoice.png"
    sample.images[0].save(png)
    rendered = []
    real = documents.load_pdf_pages

    def counting(src, **kw):
        pages = real(src, **kw)
        rendered.append(len(pages))
        return pages

    monkeypatch.setattr(documents, "load_pdf_pages", counting)
    assert len(load_pages([str(png), str(pdf), str(pdf)], dpi=72, max_pages=2)) == 2
    assert rendered == [1]
    assert len(load_pages([str(pdf), str(png)], dpi=72, max_pages=3)) == 3 and rendered == [1, 2]
