"""Run every benchmark and print the table: `python bench/run_all.py [--out results.json] [--skip-hf]`.

Same as `nanovl bench`; on a GPU it uses the real Nano-12B-v2-VL shape, on a CPU the tiny preset.
"""
import sys

from nanovl.cli_bench import main

if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
