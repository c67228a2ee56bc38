#!/usr/bin/env bash
# Fill .whl/ (git-ignored) with the pure-Python and manylinux wheels the lent GPU machine lacks, for
# bench/device_run.sh to install there with --no-deps: flash-linear-attention (the prompt's chunked
# scan) and the structured-output stack (llguidance, jsonschema and its dependencies), for CPython
# 3.12 on x86_64, whatever this machine runs.
# Usage: bash bench/fetch_device_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d .whl flash-linear-attention==0.6.0 fla-core==0.6.0 llguidance jsonschema jsonschema-specifications \
  referencing rpds-py attrs
ls .whl
