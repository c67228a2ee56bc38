"""bench/engine_step_profile.py on the CPU (tiny preset): every step is accounted for, the phases it
times are the engine's, and the JSON holds what the table printed."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "bench" / "engine_step_profile.py"


def test_profile_times_the_engine_phases_and_writes_json(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("engine_step_profile", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
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
