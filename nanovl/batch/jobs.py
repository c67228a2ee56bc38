"""Batch files: the input's lines, the output's records (OpenAI Batch output format), and what a
resumed job has already finished."""
from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from nanovl.openai_api.errors import ERROR_TYPES, error_body

URLS = ("/v1/chat/completions", "/v1/completions")
# a duplicate's record names the id of the line it repeats, which must not count as finished
DUPLICATE = "duplicate_custom_id"
# how many leading lines decide that an input is no JSONL at all
NUM_SNIFF_LINES = 20


class BatchInputError(ValueError):
    """The job cannot start (missing input, unwritable output, not JSONL): one line for the user."""


@dataclass(frozen=True)
class InputLine:
    """One non-blank line of the input; `line_no` counts from 1."""

    line_no: int
    raw: bytes


def read_lines(path: str | Path) -> Iterator[InputLine]:
    """The input's non-blank lines as bytes (decoding is each line's own problem)."""
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, 1):
            if raw.strip():
                yield InputLine(line_no, raw.strip())


def check_input(path: Path) -> int:
    """Raise BatchInputError unless `path` is a readable JSONL file of requests; returns its non-blank lines."""
    if not path.exists():
        raise BatchInputError(f"input file not found: {path}")
    if not path.is_file():
        raise BatchInputError(f"input {path} is not a file")
    num_lines, num_objects = 0, 0
    try:
        for line in read_lines(path):
            num_lines += 1
            if num_lines <= NUM_SNIFF_LINES:
                num_objects += _is_json_object(line.raw)
    except OSError as err:
        raise BatchInputError(f"cannot read input {path}: {err.strerror}") from None
    if num_lines == 0:
        raise BatchInputError(f"input {path} is empty; give one JSON request per line")
    if num_objects == 0:
        raise BatchInputError(f"input {path} is not JSONL: none of its first lines is a JSON object "
                              "(one request per line, as OpenAI's Batch API takes)")
    return num_lines


def _is_json_object(raw: bytes) -> bool:
    try:
        return isinstance(json.loads(raw), dict)
    except ValueError:
        return False


# ------------------------------------------------------------------ records
def success_record(custom_id: str, body: dict[str, Any]) -> dict[str, Any]:
    return {"id": _new_id("batch_req"), "custom_id": custom_id,
            "response": {"status_code": 200, "request_id": _new_id("req"), "body": body}, "error": None}


def error_record(custom_id: str | None, line_no: int, status: int, message: str, *,
                 param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """A failed request: the server's error body under `response`, and `error` with the input line."""
    body = error_body(status, message, param=param, code=code)
    return {"id": _new_id("batch_req"), "custom_id": custom_id,
            "response": {"status_code": status, "request_id": _new_id("req"), "body": body},
            "error": {"code": code or ERROR_TYPES.get(status, "error"), "message": message, "line": line_no}}


def _new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


# ------------------------------------------------------------------- output
@dataclass
class Finished:
    """What an existing output already holds: ids answered (or refused) and input lines reported."""

    custom_ids: set[str] = field(default_factory=set)
    lines: set[int] = field(default_factory=set)
    num_records: int = 0
    num_unreadable: int = 0
    num_truncated_bytes: int = 0
    # records of requests that failed on the server's side (5xx: a replica died), taken out to run again
    num_retried: int = 0


def open_output(path: Path, *, resume: bool, overwrite: bool) -> tuple["RecordWriter", Finished]:
    """The writer for `path` and what to skip.

    An existing non-empty output is never silently replaced or mixed into: resume=True continues
    it (a last record cut short by a kill is dropped and redone), overwrite=True starts over.
    """
    if resume and overwrite:
        raise BatchInputError("--resume and --overwrite exclude each other")
    exists = path.is_file() and path.stat().st_size > 0
    if exists and not (resume or overwrite):
        raise BatchInputError(f"output {path} already exists; pass --resume to skip the requests it holds "
                              "or --overwrite to start over")
    finished = Finished()
    if exists and resume:
        finished.num_truncated_bytes = _drop_partial_last_line(path)
        finished.num_retried = _drop_server_failures(path)
        finished = _scan(path, finished)
    return RecordWriter(path, append=exists and resume), finished


def _drop_partial_last_line(path: Path) -> int:
    """Cut the file after its last newline (a kill mid-write leaves a partial record); returns bytes cut."""
    size = path.stat().st_size
    with open(path, "rb+") as f:
        keep, pos = 0, size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            k = block.rfind(b"\n")
            if k >= 0:
                keep = pos - step + k + 1
                break
            pos -= step
        f.truncate(keep)
    return size - keep


def _drop_server_failures(path: Path) -> int:
    """Take the 5xx records (the job's fault, not the request's) out of `path` so that a resumed job
    runs those requests again; the file is replaced whole, so a kill now loses nothing. Returns how many."""
    kept, dropped = [], 0
    with open(path, "rb") as f:
        for raw in f:
            if _status(raw) >= 500:
                dropped += 1
            else:
                kept.append(raw)
    if dropped:
        tmp = path.with_name(path.name + ".resume-tmp")
        tmp.write_bytes(b"".join(kept))
        os.replace(tmp, path)
    return dropped


def _status(raw: bytes) -> int:
    try:
        status = json.loads(raw)["response"]["status_code"]
    except (ValueError, KeyError, TypeError):
        return 0
    return status if isinstance(status, int) else 0


def _scan(path: Path, finished: Finished) -> Finished:
    with open(path, "rb") as f:
        for raw in f:
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                error = rec.get("error") or {}
                custom_id = rec.get("custom_id")
            except (ValueError, AttributeError):
                finished.num_unreadable += 1
                continue
            if not isinstance(error, dict):
                error = {}
            finished.num_records += 1
            if isinstance(custom_id, str) and error.get("code") != DUPLICATE:
                finished.custom_ids.add(custom_id)
            if isinstance(error.get("line"), int):
                finished.lines.add(error["line"])
    return finished


class RecordWriter:
    """Appends one JSON record per line, flushed at once: a killed job loses no finished record."""

    def __init__(self, path: Path, *, append: bool) -> None:
        try:
            self.file = open(path, "a" if append else "w", encoding="utf-8")
        except OSError as err:
            raise BatchInputError(f"cannot write output {path} ({err.strerror})") from None

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.file.flush()

    def close(self) -> None:
        self.file.close()


def check_output(path: Path) -> None:
    """Raise BatchInputError unless a file can be written at `path` (checked before the model loads)."""
    if path.is_dir() or str(path).endswith(("/", os.sep)):
        raise BatchInputError(f"output {path} is a folder; give a file path")
    parent = path.parent
    if not parent.is_dir():
        raise BatchInputError(f"output {path}: folder {parent} does not exist")
    target = path if path.exists() else parent
    if not os.access(target, os.W_OK):
        raise BatchInputError(f"cannot write output {path} ({'file' if target == path else 'folder'} not writable)")
