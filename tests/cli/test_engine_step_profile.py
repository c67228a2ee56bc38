"""bench/engine_step_profile.py on the CPU (tiny preset): every step is accounted for, the phases it
times are the engine's, and the JSON holds what the table printed."""
from __future__ import annotations

import json

from helpers import load_bench


def test_profile_times_the_engine_phases_and_writes_json(tmp_path, capsys):
    mod = load_bench("engine_step_profile")
    out = tmp_path / "prof.json"
    mod.main(["--steps", "6", "--prompt", "12", "--top", "3", "--out", str(out)])
    printed = capsys.readouterr().out
    res = json.loads(out.read_text())
    assert res["preset"] == "tiny" and res["steps"] == 6 and not res["graphs"]
    assert res["kernels"] is None  # no GPU: nothing to trace
    phases = res["phases_us"]
    for name in ("scheduler.schedule", "runner.execute", "  runner.decode", "engine._sample",
                 "scheduler.update_from_output", "engine._output"):
        assert phases[name] > 0, name
    # the decode forward sits inside the runner's execute, and no phase exceeds the whole step
    assert phases["  runner.decode"] <= phases["runner.execute"] <= res["profiled_step_us"]
    assert f"{res['bare_step_us']:.0f} us a step bare" in printed


def test_the_timed_sampler_keeps_both_entries_of_the_sampler():
    # the lookahead draws through `sampler.draw`: a wrapper without it broke the GPU profile once
    import torch
    from collections import defaultdict

    from nanovl.engine.sampler import Sampler, SamplingRow
    from nanovl.sampling_params import SamplingParams

    mod = load_bench("engine_step_profile")
    totals = defaultdict(float)
    timed = mod._TimedSampler(Sampler(), totals)
    logits = torch.tensor([[0.0, 3.0, 1.0], [2.0, 0.0, 1.0]])
    rows = [SamplingRow(SamplingParams(temperature=0), None, [], []) for _ in range(2)]
    assert timed.draw(logits, rows).tolist() == [1, 0]
    assert timed(logits, rows).token_ids == [1, 0]
    assert set(totals) == {"  sampler (waits for the GPU)", "  sampler.draw (no wait)"}
