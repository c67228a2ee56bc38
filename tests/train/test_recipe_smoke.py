"""`nanovl train` smoke test on CPU: loss falls on a repeated batch, the export loads and generates, resume continues.

    pytest tests/train/test_recipe_smoke.py -q
"""
from __future__ import annotations

import json
import math

import pytest
import torch
from PIL import Image

import nanovl
from nanovl.llm import BUNDLED_MODEL, LLM
from nanovl.sampling_params import SamplingParams
from nanovl.train import recipe


def _args(out, steps: int) -> list[str]:
    # warmup 1 and a high LR so a handful of steps visibly fit the one batch; one example per batch
    # (seed 3's first: a stage-1 document) and one thread keep a step near 1 s even on a busy
    # 2-core box, where two spinning torch threads run ~6x slower
    return ["--out", str(out), "--tokenizer", str(BUNDLED_MODEL), "--steps", str(steps), "--batch-size", "1",
            "--workers", "0", "--threads", "1", "--repeat-batch", "--warmup", "1", "--lr", "2e-3",
            "--log-every", "1", "--device", "cpu", "--seed", "3"]


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_recipe_fits_exports_and_resumes(tmp_path):
    out = tmp_path / "run"
    # 1) fit a repeated batch for 3 steps
    recipe.main(_args(out, 3))
    log = _log(out)
    losses = [r["loss"] for r in log]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert all(r["batch_make_s"] >= 0.0 for r in log)  # logged beside data_wait_s (PackedBatch.make_s)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < 0.5 * losses[0], losses
    # 2) the export is an ordinary checkpoint: the loader and the engine both take it
    export = out / "export"
    model = nanovl.load_model(export)
    assert sum(p.numel() for p in model.parameters()) > 0
    assert json.loads((export / "train_meta.json").read_text())["step"] == 3
    llm = LLM(export, device="cpu", max_num_seqs=2)
    image = Image.new("RGB", (64, 48), (200, 30, 30))
    res = llm.chat([{"role": "user", "content": [{"type": "image", "image": image},
                                                 {"type": "text", "text": "What is the total?"}]}],
                   SamplingParams(temperature=0.0, max_tokens=3, enable_thinking=False))[0]
    assert 1 <= res.num_generated_tokens <= 3 and res.finished
    # 3) resume from state.pt: the step count and training time continue, weights and optimizer restored
    state = torch.load(out / "state.pt", map_location="cpu", weights_only=False)
    assert state["step"] == 3 and state["optimizer"]["state"] and state["optimizer_start"] == 0
    # a longer warmup on resume tells the two schedules apart: Adam's moments came back, so the
    # warmup counts from the run's first batch (4/10 of the peak), not from this call's (1/10)
    recipe.main(_args(out, 4) + ["--warmup", "10"])
    log = _log(out)
    assert [r["step"] for r in log] == [1, 2, 3, 4]
    assert log[3]["lr"] == pytest.approx(2e-3 * 4 / 10, rel=0.01)
    assert log[3]["seconds"] > log[2]["seconds"]
    # a restarted run (fresh init, fresh Adam) would be back near the first loss
    assert log[3]["loss"] < 0.5 * log[0]["loss"]
    assert torch.load(out / "state.pt", map_location="cpu", weights_only=False)["step"] == 4


def test_recipe_fast_ops_on_cpu(tmp_path, capsys):
    # --fast-ops (the CUDA default) on CPU: training op mode + cache-free attention; loss still falls
    assert recipe.parse_args(["--out", "x"]).fast_ops is None
    assert recipe.parse_args(["--out", "x", "--no-fast-ops"]).fast_ops is False
    out = tmp_path / "fast"
    recipe.main(_args(out, 3) + ["--fast-ops", "--no-state"])
    assert "ops: training mode" in capsys.readouterr().out
    losses = [r["loss"] for r in _log(out)]
    assert all(math.isfinite(x) for x in losses) and losses[-1] < 0.5 * losses[0], losses


def test_fast_ops_turn_off_when_a_training_step_fails(monkeypatch, capsys):
    def failing(*a, **k):
        raise RuntimeError("simulated Triton backward failure")
    monkeypatch.setattr(recipe, "batch_loss", failing)
    model = torch.nn.Linear(2, 2)
    assert recipe.fast_ops_work(model, [], None, use_amp=False) is False
    assert "fast ops off" in capsys.readouterr().out
