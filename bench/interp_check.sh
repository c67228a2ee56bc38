#!/usr/bin/env bash
# CPU check of every Triton kernel (ours and fla's simple-GLA scan) in Triton's interpreter,
# against the reference twins. Needs a Python with torch + triton + pytest that is NOT the
# project venv (CI has no triton); fla comes from the wheels in .whl, patched in a temp copy.
# Usage: PY=/tmp/tvenv/bin/python bash bench/interp_check.sh
set -euo pipefail
PY=${PY:-python3}
SITE=$(mktemp -d)
for w in .whl/*.whl; do (cd "$SITE" && unzip -q -o "$OLDPWD/$w"); done
# the interpreter hands kernels Python ints as loop indices, which have no `.to`
sed -i 's/i_t\.to(tl\.int64)/tl.cast(i_t, tl.int64)/' "$SITE"/fla/ops/common/chunk_h.py "$SITE"/fla/ops/common/chunk_o.py
TRITON_INTERPRET=1 PYTHONPATH="$SITE:$PWD" "$PY" tests/gpu/test_gpu_ops.py 2>&1 | grep -v -i warn
TRITON_INTERPRET=1 PYTHONPATH="$SITE:$PWD" "$PY" tests/gpu/test_gpu_model.py 2>&1 | grep -v -i warn
TRITON_INTERPRET=1 PYTHONPATH="$SITE:$PWD" "$PY" tests/gpu/test_gpu_sampling.py 2>&1 | grep -v -i warn
rm -rf "$SITE"
