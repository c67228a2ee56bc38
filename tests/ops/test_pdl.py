"""When the decode kernels launch with programmatic dependent launch (nanovl/ops/pdl.py). That PDL
changes no result is a GPU test (tests/gpu/test_gpu_model.py); here, that it is asked for only
where it can run, and that a plain launch does not name it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from nanovl.ops import pdl


def _cuda_tensor(index=0):
    # what pdl_wanted reads of a tensor, without a GPU
    return SimpleNamespace(is_cuda=True, device=SimpleNamespace(index=index))


def test_pdl_only_when_asked_and_the_device_can(monkeypatch):
    seen = []
    monkeypatch.setattr(pdl, "_device_can", lambda index: seen.append(index) or index == 0)
    monkeypatch.setenv("NANOVL_PDL", "auto")
    assert not pdl.pdl_wanted(_cuda_tensor()), "auto is on only inside a decode step's scope"
    monkeypatch.setenv("NANOVL_PDL", "0")
    assert not pdl.pdl_wanted(_cuda_tensor())
    monkeypatch.setenv("NANOVL_PDL", "1")
    assert pdl.pdl_wanted(_cuda_tensor(0))
    assert not pdl.pdl_wanted(_cuda_tensor(1)), "asked for on a device without it"
    assert seen[-2:] == [0, 1]  # the tensor's own device is the one checked
    monkeypatch.setenv("NANOVL_PDL", "2")
    assert pdl.pdl_mode(_cuda_tensor(0)) == pdl.BOUNDED and pdl.pdl_mode(_cuda_tensor(1)) == pdl.OFF


def test_auto_launches_with_pdl_only_in_batch_one_decode_steps(monkeypatch):
    # the device run of 2026-12-04: EAGER won at batch 1 and lost at 16 (docs/PERFORMANCE.md)
    monkeypatch.setattr(pdl, "_device_can", lambda index: True)
    monkeypatch.delenv("NANOVL_PDL", raising=False)  # auto is the default
    t = _cuda_tensor()
    with pdl.decode_batch(1):
        assert pdl.pdl_mode(t) == pdl.EAGER
        with pdl.decode_batch(16):
            assert pdl.pdl_mode(t) == pdl.OFF
        assert pdl.pdl_mode(t) == pdl.EAGER, "the outer scope's mode is back"
    assert pdl.pdl_mode(t) == pdl.OFF, "prefill and other eager work launch plainly"
    monkeypatch.setenv("NANOVL_PDL", "2")
    with pdl.decode_batch(16):
        assert pdl.pdl_mode(t) == pdl.BOUNDED, "an explicit setting holds at every batch size"
    monkeypatch.setenv("NANOVL_PDL", "0")
    with pdl.decode_batch(1):
        assert pdl.pdl_mode(t) == pdl.OFF


def test_pdl_setting_must_be_a_known_mode(monkeypatch):
    # a typo must not silently launch plainly and be benchmarked as if PDL were on
    monkeypatch.setenv("NANOVL_PDL", "yes")
    with pytest.raises(ValueError, match="NANOVL_PDL must be auto, 0, 1 or 2"):
        pdl.pdl_mode(torch.zeros(3))


def test_pdl_never_on_cpu_tensors(monkeypatch):
    # the CPU interpreter (TRITON_INTERPRET=1) runs the kernels on CPU tensors: they launch plainly
    monkeypatch.setenv("NANOVL_PDL", "1")
    monkeypatch.setattr(pdl, "_device_can", lambda index: True)
    assert not pdl.pdl_wanted(torch.zeros(3))


def test_launch_options_only_name_pdl_when_used():
    # Triton without PDL does not know `launch_pdl`: a plain launch must not pass it at all
    assert pdl.launch_options(False) == {}
    assert pdl.launch_options(True) == {"launch_pdl": True}
    assert pdl.launch_options(pdl.BOUNDED) == {"launch_pdl": True}
