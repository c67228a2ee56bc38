"""Offline batch jobs over OpenAI Batch API JSONL files: in process by default, on Ray actors when asked.

`run_batch(input_path, output_path, model=..., ray=False)` returns a BatchSummary; `nanovl batch` is its CLI.
"""
from nanovl.batch.jobs import BatchInputError
from nanovl.batch.runner import BatchSummary, run_batch

__all__ = ["BatchInputError", "BatchSummary", "run_batch"]
