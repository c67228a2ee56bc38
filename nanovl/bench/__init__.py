"""Benchmarks behind `nanovl bench` (see nanovl/cli_bench.py): our model, the roofline, transformers."""
