#!/usr/bin/env bash
# One training call on the lent GPU, chained across calls (run from the repo root):
#   TRAIN_S=430 GPU_TESTS=1 bash nanovl/train/device_train.sh   # then again with TRAIN_S=540
# Continues /tmp/nvrun/state.pt when the machine is still warm (weights + optimizer), else the
# export carried in .run_init/ (--init: weights only), else starts fresh. Every call exports the
# checkpoint into $OUT (bf16 shards < 16 MiB, the json/jinja files in one meta.tar) with the log,
# so a cold machine loses nothing but the optimizer. Either way the LR schedule and the stage
# boundaries continue from the batch and seconds already trained: --time-budget, --stage0-steps and
# --stage1-steps always describe the whole run, not this call. RECIPE_ARGS are added to the recipe's flags;
# TRAIN_BENCH=1 first times training steps by batch size (bench/bench_train_step.py, capped at TRAIN_BENCH_S).
# EVAL_TASKS (default text_tile,scene_tile,invoice; empty: none) are scored on EVAL_N held-out cases at the end.
# $OUT/phases.txt marks each phase with the seconds since the call started (the time outside training).
# TOKENIZER (default the shipped one) set but empty: the recipe builds one into the run folder
# (with RECIPE_ARGS="--split-digits ...": one token per digit); it travels in the export.
set -u
export PYTHONUNBUFFERED=1
# every batch has other shapes (tiles, sequence length): growable segments spare the caching
# allocator a cudaMalloc/cudaFree pair, each a device sync, whenever a new size does not fit
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
OUT=${OUT:-/tmp/nanovl_out}  # the device tool sets it
TRAIN_S=${TRAIN_S:-430}
EVAL_TASKS=${EVAL_TASKS-text_tile,scene_tile,invoice}  # set but empty: no eval
RUN=${RUN:-/tmp/nvrun}
INIT=${INIT:-.run_init}  # the carried export of an earlier call (the machine went cold)
WHEELS=${WHEELS:-.whl}
TOKENIZER=${TOKENIZER-nanovl/assets/tiny}
tok=(--tokenizer "${TOKENIZER:-$RUN/tokenizer}")
# a carried export brings its own tokenizer: the weights' ids must match it
[ -f "$INIT/tokenizer.json" ] && tok=(--tokenizer "$INIT")
mkdir -p "$OUT" "$RUN"
# where a call's time outside training goes (~55 s of every ~535 s call in run 10): seconds since start
mark() { echo "$SECONDS $1" >> "$OUT/phases.txt"; }
mark start

if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl \
    || echo "wheel install failed: the scan trains on its reference"
fi
export PYTHONPATH=/tmp/site:$PWD${PYTHONPATH:+:$PYTHONPATH}
mark wheels-installed
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>&1 | tee "$OUT/env.txt"

if [ "${GPU_TESTS:-0}" = 1 ]; then
  # fla's Triton backward against the reference gradients: the one thing training mode trusts
  timeout -k 5 100 python3 -m pytest -q -m gpu tests/train/test_training_ops.py -p no:cacheprovider 2>&1 \
    | tee "$OUT/gpu_tests.log"
fi

if [ "${TRAIN_BENCH:-0}" = 1 ]; then
  # seconds per training step against batch size and the GPU's busy fraction (is a bigger batch free?)
  timeout -k 5 "${TRAIN_BENCH_S:-120}" python3 bench/bench_train_step.py --out "$OUT/train_step.json" 2>&1 \
    | grep -v '^\[bench\]' | tee "$OUT/train_step.txt"
fi

from=()
if [ -f "$RUN/state.pt" ]; then
  echo "warm machine: resuming $RUN/state.pt"
elif [ -f "$INIT/config.json" ]; then
  from=(--init "$INIT")
else
  echo "fresh run"
fi
mark recipe-start
# `${RECIPE_ARGS}` unquoted on purpose: it is a list of flags
# shellcheck disable=SC2086
python3 -m nanovl.train.recipe --out "$RUN" "${tok[@]}" --export "$RUN/export" \
  --max-shard-mb 12 --time-limit "$TRAIN_S" --threads 1 "${from[@]}" ${RECIPE_ARGS:-} 2>&1 | tee "$OUT/train.log"

mark recipe-end
# a quick held-out check on the GPU, so the next call can be steered without a CPU eval first
if [ -n "$EVAL_TASKS" ] && [ -f "$RUN/export/config.json" ]; then
  timeout -k 5 "${EVAL_S:-90}" python3 -m nanovl.train.eval_cli --model "$RUN/export" --device "${EVAL_DEVICE:-cuda}" \
    --tasks "$EVAL_TASKS" --n "${EVAL_N:-30}" 2>&1 | tee "$OUT/eval.txt"
fi

mark eval-end
cp "$RUN"/export/*.safetensors "$OUT"/ 2>/dev/null
(cd "$RUN/export" && tar cf "$OUT/meta.tar" --exclude='*.safetensors' .)
cp "$RUN/log.jsonl" "$OUT/log.jsonl" 2>/dev/null
mark copied-out
ls -la "$OUT"
