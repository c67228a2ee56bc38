"""When the decode kernels launch with programmatic dependent launch (nanovl/ops/pdl.py). That PDL
changes no result is a GPU test (tests/gpu/test_gpu_model.py); here, that it is asked for only
where it can run, and that a plain launch does not name it."""
from __future__ import annotations

from types import SimpleNamespace

import torch

from nanovl.ops import pdl


def _cuda_tensor(index=0):
    # what pdl_wanted reads of a tensor, without a GPU
    return SimpleNamespace(is_cuda=True, device=SimpleNamespace(index=index))


def test_pdl_only_when_asked_and_the_device_can(monkeypatch):
    seen = []
    monkeypatch.setattr(pdl, "_device_can", lambda index: seen.append(index) or index == 0)
    monkeypatch.delenv("NANOVL_PDL", raising=False)
    assert not pdl.pdl_wanted(_cuda_tensor()), "on without NANOVL_PDL=1"
    monkeypatch.setenv("NANOVL_PDL", "0")
    assert not pdl.pdl_wanted(_cuda_tensor())
    monkeypatch.setenv("NANOVL_PDL", "1")
    assert pdl.pdl_wanted(_cuda_tensor(0))
    assert not pdl.pdl_wanted(_cuda_tensor(1)), "asked for on a device without it"
    assert seen == [0, 1]  # the tensor's own device is the one checked


def test_pdl_never_on_cpu_tensors(monkeypatch):
    # the CPU interpreter (TRITON_INTERPRET=1) runs the kernels on CPU tensors: they launch plainly
    monkeypatch.setenv("NANOVL_PDL", "1")
    monkeypatch.setattr(pdl, "_device_can", lambda index: True)
    assert not pdl.pdl_wanted(torch.zeros(3))


def test_launch_options_only_name_pdl_when_used():
    # Triton without PDL does not know `launch_pdl`: a plain launch must not pass it at all
    assert pdl.launch_options(False) == {}
    assert pdl.launch_options(True) == {"launch_pdl": True}
