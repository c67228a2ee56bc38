#!/usr/bin/env bash
# The GPU checks of code written while no device was lent, for the first call of the next session
# that has one (bench/device_run.sh is the full benchmark). Each stage is capped; none stops the next.
#   1. the sampling kernel's in-kernel top-k (session 18) and the GEMV's L2 prefetch (session 19)
#      against their references / plain launches;
#   2. the sampling ops timed with and without a top-k;
#   3. the batch-1 decode step with the L2 prefetch off and at 8 / 16 / 32 MiB.
# Writes $OUT/{pending_tests.log,sampling*.json,decode_profile_l2.json}.
# Usage: OUT=/tmp/out bash bench/device_pending.sh   (after bash bench/fetch_device_wheels.sh here)
set -u
OUT=${OUT:-/tmp/nanovl_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl \
    || echo "wheel install failed: the prompt scan and grammar tests use their fallbacks"
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}

echo "== 1. pending GPU tests (cap 300 s: the sampling tests autotune and compile many kernels)"
timeout -k 5 300 python3 -m pytest -m gpu -rA -p no:cacheprovider tests/gpu/test_gpu_sampling.py \
  "tests/gpu/test_gpu_model.py::test_l2_prefetch_decode_graphs_equal_plain_ones" > "$OUT/pending_tests.log" 2>&1
echo "pending tests exit: $?" | tee -a "$OUT/pending_tests.log"
grep -E "^(PASSED|FAILED|ERROR|SKIPPED)" "$OUT/pending_tests.log" | cut -c1-160

echo "== 2. sampling ops, top-p alone and with top-k 50 (cap 60 s)"
timeout -k 5 30 python3 bench/bench_sampling.py --out "$OUT/sampling.json" 2>&1 | tail -12
timeout -k 5 30 python3 bench/bench_sampling.py --top-k 50 --out "$OUT/sampling_top_k.json" 2>&1 | tail -12

echo "== 3. batch-1 decode step, L2 prefetch of the next weight off / 8 / 16 / 32 MiB (cap 150 s)"
timeout -k 5 150 python3 -m nanovl.bench.decode_profile --batch 1 --pdl auto --steps 30 --top 8 \
  --l2-prefetch-mb 0,8,16,32 --out "$OUT/decode_profile_l2.json" 2>&1 | grep -v -i warn | tail -60
