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
