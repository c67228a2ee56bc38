"""Helpers of the batch tests: request lines, JSONL files, the records' message contents."""
from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from nanovl.llm import BUNDLED_MODEL

INVOICE = BUNDLED_MODEL.parent / "samples" / "invoice.png"
SCHEMA = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}


def line(custom_id: str, body: dict, url: str = "/v1/chat/completions") -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": url, "body": body}


def ask(text: str, **options) -> dict:
    return {"messages": [{"role": "user", "content": text}], "temperature": 0, **options}


def eight_requests(folder: Path) -> list[dict]:
    """Text, an image by file:// and by data URI, a json_schema answer, various max_tokens, greedy
    (and one seeded draw); the invoice is copied into `folder`, the job's default media root."""
    image = Path(shutil.copy(INVOICE, folder / "invoice.png"))
    data_uri = "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()

    def with_image(url: str) -> dict:
        return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}},
                                                          {"type": "text", "text": "What is the total? /no_think"}]}],
                "temperature": 0, "max_tokens": 12}

    return [
        line("hello", ask("Hello /no_think", max_tokens=6)),
        line("count", ask("Count to five. /no_think", max_tokens=20)),
        line("think", ask("What is 12 + 30?", max_tokens=24)),
        line("image-file", with_image(image.as_uri())),
        line("image-data", with_image(data_uri)),
        line("schema", {**with_image(image.as_uri()), "max_tokens": 40, "response_format": {
            "type": "json_schema", "json_schema": {"name": "total", "schema": SCHEMA}}}),
        line("seeded", ask("Name a colour. /no_think", max_tokens=8, temperature=0.8, seed=7)),
        line("system", {"messages": [{"role": "system", "content": "Answer briefly."},
                                     {"role": "user", "content": "Which is larger, 37 or 73? /no_think"}],
                        "temperature": 0, "max_completion_tokens": 10}),
    ]


def write_jsonl(path: Path, rows: list) -> Path:
    """Rows as lines: dicts become JSON, strings are written as they are."""
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def read_records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def by_id(records: list[dict]) -> dict[str, dict]:
    return {r["custom_id"]: r for r in records}


def answer(body: dict) -> list:
    """What must not differ between two runs of one request: each choice's message and finish reason."""
    return [(c.get("message") or c.get("text"), c["finish_reason"]) for c in body["choices"]]
