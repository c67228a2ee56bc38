#!/usr/bin/env bash
# One-shot GPU run from the repo root on the lent machine: install the fla wheels, run the gpu
# tests, then the full benchmark (nanovl beside the roofline and transformers), all inside
# TOTAL seconds (default 580). Writes $OUT/{env.txt,gpu_tests.log,gemv.json,decode_profile.json,bench.log,
# bench.json,bench.txt}
# as it goes and prints the table last. Every stage is capped and none can stop the next.
# Without a GPU it runs the same stages on the tiny preset (a quick check of this script).
# QUANT=fp8 benchmarks the LM's projections in e4m3 (nanovl bench --quant fp8) and skips the
# transformers baseline (a bf16 figure: take it from a QUANT=none run).
# Usage: OUT=/tmp/out bash bench/device_run.sh
set -u
T0=$(date +%s)
TOTAL=${TOTAL:-580}
OUT=${OUT:-/tmp/nanovl_out}
QUANT=${QUANT:-none}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
left() { echo $(( T0 + TOTAL - $(date +%s) )); }
# seconds until `reserve` seconds before the end (never below 1)
until_reserve() { local s=$(( $(left) - $1 )); [ "$s" -lt 1 ] && s=1; echo "$s"; }

# 0. wheels (fla) into /tmp/site; a failed install only costs the kernels of the prompt scan
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || python3 -c "import glob, zipfile; [zipfile.ZipFile(w).extractall('/tmp/site') for w in glob.glob('.whl/*.whl')]" \
    || echo "wheel install failed: ssd_chunk_scan will use the reference"
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}

{
  date -u; nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.max.sm,power.limit --format=csv 2>&1 || true
  python3 -c "import sys, torch; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda)"
  for p in triton transformers flash-linear-attention fla-core; do
    python3 -c "import importlib.metadata as m; print('$p', m.version('$p'))" 2>&1 | tail -1
  done
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

# 1. kernels vs their reference twins, CUDA graphs vs eager (ops first: the model test needs them all)
echo "== gpu tests (cap 240 s: the PDL tests compile every decode kernel in each mode)"
timeout -k 5 240 python3 -m pytest -q -m gpu tests/gpu/test_gpu_ops.py tests/gpu/test_gpu_model.py tests/gpu/test_gpu_engine.py \
  tests/ops/test_ops_linear.py tests/ops/test_ops_fp8_linear.py -x -p no:cacheprovider --durations=8 2>&1 | tee "$OUT/gpu_tests.log"
echo "gpu tests exit: ${PIPESTATUS[0]}" | tee -a "$OUT/gpu_tests.log"

# 1b. decode in detail: each projection shape, cuBLAS against the skinny GEMM; one decode step's kernels
#     (as the default NANOVL_PDL=auto launches them: PDL at batch 1 only; nanovl/ops/pdl.py)
echo "== GEMV bench and decode profile (cap 85 s)"
[ "$QUANT" = none ] && timeout -k 5 25 python3 bench/bench_gemv.py --out "$OUT/gemv.json" 2>&1 | tail -12
timeout -k 5 60 python3 -m nanovl.bench.decode_profile --batch 1,16 --pdl auto --steps 20 --top 12 --quant "$QUANT" \
  --out "$OUT/decode_profile.json" 2>&1 | grep -v -i warn | tail -80

# 2. nanovl's own figures; a pass that loses its CUDA context (exit 3) or is killed is resumed
#    in a fresh process on the reference ops, skipping what the results file already holds
BENCH="python3 -m nanovl.cli_bench --out $OUT/bench.json --table-out $OUT/bench.txt --quant $QUANT"
HF_RESERVE=120  # transformers: build, prefill 2k / 8k / 32k, decode b1 / b16 / b64 took 77 s on the H200 (session 18)
[ "$QUANT" != none ] && HF_RESERVE=15
echo "== nanovl bench (until $HF_RESERVE s before the end)"
timeout -k 5 "$(until_reserve $HF_RESERVE)" $BENCH --sections prefill,decode,image,video \
  --time-budget "$(until_reserve $(( HF_RESERVE + 25 )))" 2>&1 | tee -a "$OUT/bench.log"
rc=${PIPESTATUS[0]}
if [ "$rc" -ne 0 ] && [ "$(left)" -gt $(( HF_RESERVE + 45 )) ]; then
  echo "== nanovl bench exited $rc: resuming on the reference ops" | tee -a "$OUT/bench.log"
  NANOVL_FORCE_REF=1 timeout -k 5 "$(until_reserve $HF_RESERVE)" $BENCH --sections prefill,decode,image,video \
    --time-budget "$(until_reserve $(( HF_RESERVE + 25 )))" 2>&1 | tee -a "$OUT/bench.log"
fi

# 3. transformers' NemotronHForCausalLM: LM-only prefill 2k and decode b1/b16, few steps
if [ "$QUANT" = none ]; then
  echo "== transformers baseline (until 12 s before the end)"
  timeout -k 5 "$(until_reserve 12)" $BENCH --sections hf --time-budget "$(until_reserve 40)" 2>&1 | tee -a "$OUT/bench.log"
fi

# 4. the table of everything measured (also in $OUT/bench.txt)
echo "== results ($(( $(date +%s) - T0 )) s)"
python3 -m nanovl.cli_bench --out "$OUT/bench.json" --table-out "$OUT/bench.txt" --table-only 2>&1 | tail -40
# the GPU tests' failures again, last, where a call's output tail still shows them
grep -E "^(FAILED|ERROR) |^E  " "$OUT/gpu_tests.log" | head -24 | sed 's/^/gpu tests: /'
