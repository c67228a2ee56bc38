"""`nanovl/train/device_train.sh` on CPU: a fresh call exports, the next call resumes it, the eval runs.

The script is what the lent GPU runs, in calls that cannot be retried cheaply; this runs the same
chain on a few CPU steps so its plumbing (resume, export, tokenizer choice, eval) is checked here.

    pytest tests/train/test_device_train_script.py -q
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tokenizers import Tokenizer

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "nanovl" / "train" / "device_train.sh"


def _call(tmp_path: Path, steps: int, out: str) -> str:
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "OUT": str(tmp_path / out), "RUN": str(tmp_path / "run"), "TRAIN_S": "120",
           "INIT": str(tmp_path / "no_init"), "WHEELS": str(tmp_path / "no_wheels"),
           "TOKENIZER": "",  # built in the run folder, one token per digit
           "EVAL_TASKS": "text_tile", "EVAL_N": "1", "EVAL_DEVICE": "cpu", "EVAL_S": "200",
           "RECIPE_ARGS": f"--device cpu --split-digits --steps {steps} --batch-size 1 --stage0-steps 1 "
                          "--stage0-batch-size 1 --workers 0 --warmup 1 --log-every 1"}
    done = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=500)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def test_device_train_chains_calls_and_exports(tmp_path):
    first = _call(tmp_path, 2, "out1")
    assert "fresh run" in first
    out1 = tmp_path / "out1"
    assert sorted(p.name for p in out1.glob("*.safetensors")), list(out1.iterdir())
    assert [json.loads(x)["step"] for x in (out1 / "log.jsonl").read_text().splitlines()] == [1, 2]
    assert "text_tile" in (out1 / "eval.txt").read_text()
    # the call's phases, in order, with the seconds since it started (where time outside training goes)
    phases = [line.split() for line in (out1 / "phases.txt").read_text().splitlines()]
    assert [p[1] for p in phases] == ["start", "wheels-installed", "recipe-start", "recipe-end", "eval-end",
                                      "copied-out"]
    seconds = [int(p[0]) for p in phases]
    assert seconds == sorted(seconds)
    second = _call(tmp_path, 3, "out2")
    assert "warm machine: resuming" in second
    steps = [json.loads(x)["step"] for x in (tmp_path / "out2" / "log.jsonl").read_text().splitlines()]
    assert steps[-1] == 3
    # the export carries the tokenizer the weights were trained with: here the digit-splitting one
    tok = Tokenizer.from_file(str(tmp_path / "run" / "export" / "tokenizer.json"))
    assert tok.encode("2023").tokens == ["2", "0", "2", "3"]
