"""run_batch: an OpenAI Batch JSONL file in, one record per request out, in process or on Ray.

    summary = run_batch("requests.jsonl", "results.jsonl", model="path/to/checkpoint")
    summary = run_batch("requests.jsonl", "results.jsonl", ray=True, replicas=4, gpus_per_replica=1)
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, TextIO

from nanovl.batch.execute import Done
from nanovl.batch.jobs import (DUPLICATE, BatchInputError, Finished, RecordWriter, check_input, check_output,
                               error_record, open_output, read_lines)
from nanovl.batch.prepare import LineError, WorkItem, parse_line, prepare
from nanovl.openai_api.errors import RequestError
from nanovl.openai_api.media import LocalMediaPolicy

PROGRESS_EVERY_S = 1.0


@dataclass
class BatchSummary:
    """What a job did: records written (ok / failed), requests skipped as already in the output."""

    num_done: int = 0
    num_failed: int = 0
    num_skipped: int = 0
    num_output_tokens: int = 0
    elapsed_s: float = 0.0
    # replica index -> requests it ran (local mode: {0: n})
    by_replica: dict[int, int] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return (self.num_done + self.num_failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def output_tokens_per_s(self) -> float:
        return self.num_output_tokens / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def line(self) -> str:
        return (f"batch: {self.num_done} done, {self.num_failed} failed, {self.num_skipped} skipped in "
                f"{self.elapsed_s:.1f} s ({self.requests_per_s:.2f} requests/s, "
                f"{self.output_tokens_per_s:.1f} output tokens/s)")


def run_batch(input_path: str | Path, output_path: str | Path, *, model: str | Path | None = None,
              ray: bool = False, replicas: int = 1, cpus_per_replica: float = 1.0, gpus_per_replica: float | None = None,
              ray_address: str | None = None, chunk_size: int | None = None, max_attempts: int = 2,
              allowed_media_root: str | Path | None = None, max_media_count: int = 16,
              max_media_bytes: int = 64 * 2**20, resume: bool = False, overwrite: bool = False,
              progress: TextIO | None = None, llm=None, **engine_kwargs: Any) -> BatchSummary:
    """Run every request of `input_path` and write its record to `output_path` as it finishes.

    Args:
        model: checkpoint folder or hub id (None: the bundled tiny model); `llm`: an LLM to use instead
            (local mode only). engine_kwargs: EngineConfig fields (max_num_seqs, device, ...).
        ray: run on `replicas` Ray actors (joining `ray_address` / RAY_ADDRESS, else a local Ray),
            handing out chunks of `chunk_size` requests (default: 4 x max_num_seqs, as a replica's engine
            drains at each chunk's end); gpus_per_replica None: 1 when the cluster has a GPU per replica, else 0.
        allowed_media_root: file media is read only below it (default: the input file's folder).
        resume / overwrite: what to do with an existing output (neither: refuse to touch it).
        progress: a stream for a progress line (stderr in the CLI); None prints nothing.
    Returns:
        the BatchSummary. Raises BatchInputError before any model work for a bad input or output.
    """
    input_path, output_path = Path(input_path), Path(output_path)
    num_lines = check_input(input_path)
    check_output(output_path)
    if output_path.resolve() == input_path.resolve():
        raise BatchInputError(f"output {output_path} is the input file; write the records elsewhere")
    root = Path(allowed_media_root) if allowed_media_root is not None else input_path.resolve().parent
    media = LocalMediaPolicy(allowed_root=root, max_media_count=max_media_count, max_media_bytes=max_media_bytes)
    writer, finished = open_output(output_path, resume=resume, overwrite=overwrite)
    if progress is not None and (finished.num_records or finished.num_retried):
        cut = f"; dropped a record cut short ({finished.num_truncated_bytes} bytes)" if finished.num_truncated_bytes else ""
        again = f"; {finished.num_retried} server-side failures run again" if finished.num_retried else ""
        print(f"batch: resuming {output_path}: {finished.num_records} records kept{cut}{again}", file=progress)
    job = _Job(input_path, writer, finished, media, _Progress(progress, num_lines))
    try:
        if ray:
            from nanovl.batch.ray_runner import RayOptions, run_ray

            opts = RayOptions(replicas=replicas, cpus_per_replica=cpus_per_replica, gpus_per_replica=gpus_per_replica,
                              address=ray_address, chunk_size=chunk_size or 4 * engine_kwargs.get("max_num_seqs", 8),
                              max_attempts=max_attempts, engine_kwargs=engine_kwargs)
            results = run_ray(None if model is None else str(model), job.items(), opts)
        else:
            from nanovl.batch.execute import Executor

            if llm is None:
                from nanovl.llm import LLM

                llm = LLM(model, **engine_kwargs)
            job.start()
            results = Executor(llm, replica=0).run_many(job.items())
        for done in results:
            job.record(done)
    finally:
        writer.close()
    return job.finish()


class _Job:
    """The driver's bookkeeping: which lines to run or skip, records written, counters."""

    def __init__(self, input_path: Path, writer: RecordWriter, finished: Finished, media: LocalMediaPolicy,
                 progress: "_Progress") -> None:
        self.input_path = input_path
        self.writer, self.finished, self.media, self.progress = writer, finished, media, progress
        self.summary = BatchSummary()
        self.seen: set[str] = set()
        self.t0: float | None = None

    def start(self) -> None:
        # timed from the first request: model loading is not the batch's throughput
        if self.t0 is None:
            self.t0 = time.monotonic()

    def items(self) -> Iterator[WorkItem]:
        """The input's requests to run; refused lines are written here and then, skipped ones counted."""
        for line in read_lines(self.input_path):
            self.start()
            if line.line_no in self.finished.lines:
                # its id still counts as used, so a later line repeating it is the duplicate it was
                self.seen.add(_custom_id_or_none(line))
                self._skip()
                continue
            custom_id = None
            try:
                custom_id, url, body = parse_line(line)
                if custom_id in self.seen:
                    raise LineError(custom_id, RequestError(
                        400, f"line {line.line_no}: custom_id {custom_id!r} was already used by an earlier line",
                        param="custom_id", code=DUPLICATE))
                self.seen.add(custom_id)
                if custom_id in self.finished.custom_ids:
                    self._skip()
                    continue
                yield prepare(custom_id, line.line_no, url, body, self.media)
            except LineError as err:
                e = err.error
                self.record(Done(error_record(err.custom_id, line.line_no, e.status, e.message, param=e.param,
                                              code=e.code), False))

    def _skip(self) -> None:
        self.summary.num_skipped += 1
        self.progress.update(self.summary)

    def record(self, done: Done) -> None:
        self.writer.write(done.record)
        s = self.summary
        if done.is_ok:
            s.num_done += 1
            s.num_output_tokens += done.num_output_tokens
        else:
            s.num_failed += 1
        if done.replica is not None:
            s.by_replica[done.replica] = s.by_replica.get(done.replica, 0) + 1
        s.elapsed_s = time.monotonic() - (self.t0 or time.monotonic())
        self.progress.update(s)

    def finish(self) -> BatchSummary:
        self.summary.elapsed_s = time.monotonic() - self.t0 if self.t0 is not None else 0.0
        self.progress.update(self.summary, final=True)
        return self.summary


class _Progress:
    """"done/total" on one line of `stream`, redrawn at most once a second (a new line each time off a TTY)."""

    def __init__(self, stream: TextIO | None, total: int) -> None:
        self.stream, self.total, self.last = stream, total, time.monotonic()
        self.is_tty = stream is not None and stream.isatty()

    def update(self, s: BatchSummary, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.stream is None or (final and not self.is_tty):
            return
        if not final and now - self.last < (PROGRESS_EVERY_S if self.is_tty else 10.0):
            return
        self.last = now
        n = s.num_done + s.num_failed + s.num_skipped
        text = (f"batch: {n}/{self.total} ({s.num_done} done, {s.num_failed} failed, {s.num_skipped} skipped), "
                f"{s.requests_per_s:.2f} requests/s, {s.output_tokens_per_s:.1f} output tokens/s")
        if self.is_tty:
            print("\r\x1b[2K" + text, end="\n" if final else "", file=self.stream, flush=True)
        else:
            print(text, file=self.stream, flush=True)


def _custom_id_or_none(line) -> str | None:
    try:
        return parse_line(line)[0]
    except LineError as err:
        return err.custom_id
