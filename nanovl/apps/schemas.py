"""JSON schemas for document extraction: built-ins by name, files by path, validation, page merging."""
from __future__ import annotations

import json
from decimal import Decimal, InvalidOperation
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import jsonschema

BUILTIN = ("invoice", "receipt")


class SchemaError(ValueError):
    """A schema that cannot be loaded or used, or a result that does not validate."""


def load_schema(spec: str | Path | dict) -> dict:
    """A schema dict from a built-in name ("invoice", "receipt"), a .json file path, or a dict.

    Raises:
        SchemaError: unknown name, unreadable file, invalid JSON or not a valid JSON schema.
    """
    if isinstance(spec, dict):
        schema = spec
    elif str(spec) in BUILTIN:
        text = (resources.files("nanovl.apps") / "builtin_schemas" / f"{spec}.json").read_text(encoding="utf-8")
        schema = json.loads(text)
    else:
        path = Path(spec)
        if not path.is_file():
            raise SchemaError(f"schema {str(spec)!r} is neither a built-in ({', '.join(BUILTIN)}) nor a file")
        try:
            schema = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise SchemaError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(schema, dict):
        raise SchemaError("a schema must be a JSON object")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as err:
        raise SchemaError(f"invalid JSON schema: {err.message}") from None
    return schema


def _multiple_of(validator, step, instance, schema):
    # jsonschema divides floats (19.99 / 0.01 = 1998.9999...) and calls 19.99 no multiple of 0.01;
    # decimal arithmetic on the written digits gives the answer a reader expects
    if not validator.is_type(instance, "number"):
        return
    try:
        ok = Decimal(str(instance)) % Decimal(str(step)) == 0
    except InvalidOperation:
        ok = False
    if not ok:
        yield jsonschema.ValidationError(f"{instance!r} is not a multiple of {step!r}")


def validation_errors(value: Any, schema: dict) -> list[str]:
    """Every way `value` breaks `schema` (formats such as "date" checked too), as "path: message"."""
    base = jsonschema.validators.validator_for(schema)
    cls = jsonschema.validators.extend(base, {"multipleOf": _multiple_of})
    validator = cls(schema, format_checker=base.FORMAT_CHECKER)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in sorted(validator.iter_errors(value), key=lambda e: list(map(str, e.absolute_path)))]


# compact JSON, as the training targets are written (train/data/common.to_json): a grammar that
# forces ": " after every key pushes the tiny model off the token sequences it learned
COMPACT_JSON = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}


def response_format(schema: dict, name: str = "extraction") -> dict:
    """The SamplingParams.response_format that constrains decoding to `schema`, written compactly."""
    guided = {**schema, "x-guidance": {**COMPACT_JSON, **schema.get("x-guidance", {})}}
    return {"type": "json_schema", "json_schema": {"name": name, "schema": guided}}


def extraction_prompt(schema: dict) -> str:
    """The instruction for one extraction: "Extract the invoice as JSON, including the line items."

    The wording follows the tiny model's training prompts; a schema without a title asks for
    "the document" and names its top-level fields.
    """
    props = schema.get("properties", {}) if isinstance(schema.get("properties"), dict) else {}
    title = schema.get("title")
    if isinstance(title, str) and title.strip():
        extra = ", including the line items" if "items" in props else ""
        return f"Extract the {title.strip()} as JSON{extra}."
    fields = f" with the fields {', '.join(props)}" if props else ""
    return f"Extract the document as JSON{fields}."


def merge_pages(values: Sequence[Any]) -> Any:
    """Merge page-wise extractions of one document.

    Objects merge key by key; a scalar keeps the first non-null value (page order); arrays are
    concatenated, leaving out elements equal to one an earlier page already gave (a header row or
    a copy page repeated on every page is kept once).
    """
    present = [v for v in values if v is not None]
    if not present:
        return None
    if all(isinstance(v, dict) for v in present):
        keys = list(dict.fromkeys(k for v in present for k in v))
        return {k: merge_pages([v.get(k) for v in present]) for k in keys}
    if all(isinstance(v, list) for v in present):
        merged: list[Any] = []
        for page in present:
            earlier = list(merged)
            merged += [x for x in page if x not in earlier]
        return merged
    return present[0]
