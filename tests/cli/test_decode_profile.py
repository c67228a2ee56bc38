"""The decode profile (`python -m nanovl.bench.decode_profile`): its interval arithmetic, and a CPU
run on the tiny preset that writes a self-consistent table."""
from __future__ import annotations

import json
import os

import pytest

from nanovl.bench import decode_profile as dp


def test_busy_time_is_the_union_of_overlapping_kernels():
    # two overlapping kernels (0-10, 5-12), one nested (6-8), a gap, then one more (20-25)
    events = [("a", 0.0, 10.0), ("b", 5.0, 12.0), ("c", 6.0, 8.0), ("a", 20.0, 25.0)]
    s = dp.summarize_events(events, steps=1)
    assert s["busy_us_per_step"] == pytest.approx(12.0 + 5.0)
    assert s["kernel_us_per_step"] == pytest.approx(10 + 7 + 2 + 5)
    assert s["kernels_per_step"] == 4
    assert [r["name"] for r in s["by_name"]] == ["a", "b", "c"]  # by time: a 15, b 7, c 2
    assert s["by_name"][0]["calls_per_step"] == 2


def test_per_step_figures_divide_by_the_steps():
    events = [("k", 0.0, 4.0), ("k", 10.0, 14.0)]
    s = dp.summarize_events(events, steps=2)
    assert s["busy_us_per_step"] == pytest.approx(4.0) and s["by_name"][0]["calls_per_step"] == 1


def test_cpu_profile_of_the_tiny_preset(tmp_path, capsys):
    out = tmp_path / "profile.json"
    assert dp.main(["--device", "cpu", "--steps", "3", "--prompt", "8", "--bandwidth", "1e10",
                    "--out", str(out)]) == 0
    [res] = json.loads(out.read_text())
    assert res["preset"] == "tiny" and res["profiled_mode"] == "eager" and res["batch"] == 1
    # the ops profiled lie inside the timed steps' wall time (within the profiler's own overhead)
    assert 0 < res["busy_us_per_step"] <= res["kernel_us_per_step"] + 1e-6
    assert res["kernels_per_step"] > 10
    # the roofline of the tiny model: its weights (~0.1 M parameters in fp32) at 10 GB/s
    assert 10 < res["roofline_us"] < 1000
    assert "kernels per step" in capsys.readouterr().out


def test_pdl_settings_profile_one_after_the_other(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NANOVL_PDL", raising=False)
    seen = []
    real = dp.profile_decode

    def recording(*args, **kwargs):
        seen.append(os.environ.get("NANOVL_PDL"))
        return real(*args, **kwargs)

    monkeypatch.setattr(dp, "profile_decode", recording)
    out = tmp_path / "profile.json"
    assert dp.main(["--device", "cpu", "--steps", "2", "--prompt", "4", "--bandwidth", "1e10", "--batch", "1,2",
                    "--pdl", "0,1", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    # every batch size under each setting, the kernels launched with it, and the env left as found
    assert [(r["batch"], r["pdl"]) for r in res] == [(1, "0"), (1, "1"), (2, "0"), (2, "1")]
    assert seen == ["0", "1", "0", "1"] and "NANOVL_PDL" not in os.environ
    assert not any(r["pdl_active"] for r in res)  # a CPU cannot take it, and the table says so
    assert "NANOVL_PDL=1: PDL off" in capsys.readouterr().out


def test_l2_prefetch_settings_profile_one_after_the_other(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("NANOVL_L2_PREFETCH_MB", raising=False)
    seen = []
    real = dp.profile_decode

    def recording(*args, **kwargs):
        seen.append((os.environ.get("NANOVL_PDL"), os.environ.get("NANOVL_L2_PREFETCH_MB")))
        return real(*args, **kwargs)

    monkeypatch.setattr(dp, "profile_decode", recording)
    out = tmp_path / "profile.json"
    assert dp.main(["--device", "cpu", "--steps", "2", "--prompt", "4", "--bandwidth", "1e10",
                    "--pdl", "auto", "--l2-prefetch-mb", "0,16", "--out", str(out)]) == 0
    res = json.loads(out.read_text())
    assert [r["l2_prefetch_mb"] for r in res] == [0.0, 16.0]
    assert seen == [("auto", "0"), ("auto", "16")] and "NANOVL_L2_PREFETCH_MB" not in os.environ
    assert "L2 prefetch 16 MiB" in capsys.readouterr().out
