"""The dispatch rule (CPU): kernels are chosen only when allowed, a failing kernel falls back to
the reference and is recorded, a kernel module that fails to import counts as absent."""
from __future__ import annotations

import types

import pytest
import torch

from nanovl.ops import dispatch


@pytest.fixture
def fake_kernels(monkeypatch):
    calls = []

    def good(x):
        calls.append("kernel")
        return x + 1

    def bad(x):
        calls.append("bad kernel")
        raise RuntimeError("simulated compile error")

    mod = types.SimpleNamespace(good=good, bad=bad, ready=lambda: True, not_ready=lambda: False)
    monkeypatch.setattr(dispatch, "use_kernel",
                        lambda op, *t: not dispatch._forced_ref() and op not in dispatch._failed)
    monkeypatch.setattr(dispatch, "kernel_module", lambda package: mod)
    monkeypatch.setattr(dispatch, "_on_cpu", lambda tensors: False)  # as if the tensors could take kernels
    monkeypatch.setattr(dispatch, "_failed", {})
    return calls


def _ref(x):
    return x + 1


def test_cpu_tensors_take_the_reference():
    assert not dispatch.use_kernel("test_op", torch.zeros(1)) or dispatch._interpreting()


def test_kernel_runs_when_allowed(fake_kernels):
    out = dispatch.run_op("good_op", "pkg", "good", _ref, (torch.zeros(2),), ())
    assert fake_kernels == ["kernel"] and torch.equal(out, torch.ones(2))
    with dispatch.use_reference_ops():
        dispatch.run_op("good_op", "pkg", "good", _ref, (torch.zeros(2),), ())
    assert fake_kernels == ["kernel"]


def test_not_ready_kernel_takes_the_reference(fake_kernels):
    dispatch.run_op("good_op", "pkg", "good", _ref, (torch.zeros(2),), (), ready="not_ready")
    assert fake_kernels == []


def test_failing_kernel_falls_back_and_is_recorded(fake_kernels):
    out = dispatch.run_op("bad_op", "pkg", "bad", _ref, (torch.zeros(2),), ())
    assert torch.equal(out, torch.ones(2))
    assert "simulated compile error" in dispatch.kernel_failures()["bad_op"]
    # from then on the op goes straight to the reference
    dispatch.run_op("bad_op", "pkg", "bad", _ref, (torch.zeros(2),), ())
    assert fake_kernels == ["bad kernel"]


def test_kernel_module_that_fails_to_import_is_absent(tmp_path, monkeypatch):
    pkg = tmp_path / "brokenpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "kernel.py").write_text("raise RuntimeError('no driver')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert dispatch.kernel_module("brokenpkg") is None
    assert dispatch.kernel_module("nanovl.ops.sampling") is None  # no kernel.py at all


def test_training_mode_runs_only_differentiable_launchers(fake_kernels):
    # forward-only launchers must not run in training: their outputs would carry no grad_fn
    with dispatch.use_training_ops():
        out = dispatch.run_op("fwd_only_op", "pkg", "good", _ref, (torch.zeros(2),), ())
        assert fake_kernels == [] and torch.equal(out, torch.ones(2))
        dispatch.run_op("trainable_op", "pkg", "bad", _ref, (torch.zeros(2),), (), train_launcher="good")
        assert fake_kernels == ["kernel"]
        with dispatch.use_reference_ops():
            dispatch.run_op("trainable_op", "pkg", "bad", _ref, (torch.zeros(2),), (), train_launcher="good")
        assert fake_kernels == ["kernel"]
    # outside the block the ordinary launcher is back
    dispatch.run_op("trainable_op", "pkg", "good", _ref, (torch.zeros(2),), (), train_launcher="bad")
    assert fake_kernels == ["kernel", "kernel"]


def test_failing_training_launcher_does_not_disable_the_inference_kernel(fake_kernels):
    with dispatch.use_training_ops():
        dispatch.run_op("op2", "pkg", "good", _ref, (torch.zeros(2),), (), train_launcher="bad")
    assert "op2[train]" in dispatch.kernel_failures() and "op2" not in dispatch.kernel_failures()
    dispatch.run_op("op2", "pkg", "good", _ref, (torch.zeros(2),), ())
    assert fake_kernels == ["bad kernel", "kernel"]


@pytest.fixture
def fake_cpu_twins(tmp_path, monkeypatch):
    """A package `twinpkg` whose cpu.py has a good and a failing twin; calls land in twinpkg.CALLS."""
    pkg = tmp_path / "twinpkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("CALLS = []\n")
    (pkg / "cpu.py").write_text(
        "from twinpkg import CALLS\n"
        "def good(x):\n    CALLS.append('twin')\n    return x + 1\n"
        "def bad(x):\n    CALLS.append('bad twin')\n    raise RuntimeError('simulated twin fault')\n"
        "def picky(x):\n    CALLS.append('picky twin')\n    raise ValueError('x: wrong shape')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(dispatch, "_failed", {})
    import twinpkg
    twinpkg.CALLS.clear()  # the module stays imported from one test to the next
    return twinpkg.CALLS


@pytest.mark.skipif(dispatch._interpreting(), reason="the interpreter sends CPU tensors to the kernels")
def test_cpu_tensors_take_the_twin_unless_the_reference_is_forced(fake_cpu_twins):
    x = torch.zeros(2)
    out = dispatch.run_op("twin_op", "twinpkg", "no_kernel", _ref, (x,), (x,), cpu_launcher="good")
    assert fake_cpu_twins == ["twin"] and torch.equal(out, torch.ones(2))
    with dispatch.use_reference_ops():
        dispatch.run_op("twin_op", "twinpkg", "no_kernel", _ref, (x,), (x,), cpu_launcher="good")
    with dispatch.use_training_ops():  # the twins are not checked for gradients: training keeps the reference
        dispatch.run_op("twin_op", "twinpkg", "no_kernel", _ref, (x,), (x,), cpu_launcher="good")
    dispatch.run_op("meta_op", "twinpkg", "no_kernel", _ref, (x,), (torch.zeros(2, device="meta"),),
                    cpu_launcher="good")
    assert fake_cpu_twins == ["twin"]


@pytest.mark.skipif(dispatch._interpreting(), reason="the interpreter sends CPU tensors to the kernels")
def test_failing_cpu_twin_falls_back_and_is_recorded(fake_cpu_twins):
    x = torch.zeros(2)
    for _ in range(2):
        out = dispatch.run_op("shaky_op", "twinpkg", "no_kernel", _ref, (x,), (x,), cpu_launcher="bad")
        assert torch.equal(out, torch.ones(2))
    assert fake_cpu_twins == ["bad twin"]  # once: from then on straight to the reference
    assert "simulated twin fault" in dispatch.kernel_failures()["shaky_op[cpu]"]


def test_model_ops_on_cpu_take_their_twins(monkeypatch):
    # the real ops name their twins: the SSD scan and both attentions leave the reference on a CPU
    from nanovl.ops.attention import cpu as attention_cpu
    from nanovl.ops.attention import decode_attention, prefill_attention
    from nanovl.ops.ssd import cpu as ssd_cpu
    from nanovl.ops.ssd import ssd_chunk_scan
    if dispatch._interpreting():
        pytest.skip("the interpreter sends CPU tensors to the kernels")
    called = []
    for mod, name in ((ssd_cpu, "ssd_chunk_scan_cpu"), (attention_cpu, "prefill_attention_cpu"),
                      (attention_cpu, "decode_attention_cpu")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, _name=name: called.append(_name) or _real(*a))
    ssd_chunk_scan(torch.randn(1, 5, 2, 3), torch.randn(1, 5, 2), -torch.ones(2), torch.randn(1, 5, 1, 4),
                   torch.randn(1, 5, 1, 4), 4)
    kv = torch.randn(1, 1, 6, 8)
    prefill_attention(torch.randn(1, 3, 2, 8), kv, kv, torch.tensor([2]), 0.3)
    decode_attention(torch.randn(1, 2, 8), kv, kv, torch.tensor([4]), 0.3)
    # (the decode twin is the prefill twin with one query: it calls it)
    assert called == ["ssd_chunk_scan_cpu", "prefill_attention_cpu", "decode_attention_cpu", "prefill_attention_cpu"]


@pytest.mark.skipif(dispatch._interpreting(), reason="the interpreter sends CPU tensors to the kernels")
def test_a_twins_value_error_is_the_callers_and_keeps_the_twin(fake_cpu_twins):
    # bad input (which the reference would refuse the same way) must not switch a CPU twin off for the process
    x = torch.zeros(2)
    for _ in range(2):
        with pytest.raises(ValueError, match="wrong shape"):
            dispatch.run_op("picky_op", "twinpkg", "no_kernel", _ref, (x,), (x,), cpu_launcher="picky")
    assert fake_cpu_twins == ["picky twin", "picky twin"] and "picky_op[cpu]" not in dispatch.kernel_failures()
