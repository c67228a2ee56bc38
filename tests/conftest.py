"""Shared pytest setup: markers, seeds, the `gpu` skip without CUDA, NaN-poisoned torch.empty in ops."""
from __future__ import annotations

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))


def pytest_configure(config):
    config.addinivalue_line("markers", "gpu: needs a CUDA device (run on the lent GPU)")
    config.addinivalue_line("markers", "slow: slower CPU tests")


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def _poisoned(fn):
    # ops must write every element they return: memory they allocate with torch.empty*
    # starts as NaN (float) or a large sentinel (int), so an unwritten element fails a test
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        caller = sys._getframe(1).f_globals.get("__name__", "")
        if caller.startswith("nanovl.ops") and out.numel():
            out.fill_(float("nan") if out.is_floating_point() else 2**30 if out.dtype != torch.bool else True)
        return out
    return wrapper


@pytest.fixture(autouse=True, scope="session")
def _poison_empty_in_ops():
    originals = torch.empty, torch.empty_like
    torch.empty, torch.empty_like = _poisoned(torch.empty), _poisoned(torch.empty_like)
    yield
    torch.empty, torch.empty_like = originals


@pytest.fixture(autouse=True)
def _cpu_twins_never_fail():
    # a CPU twin that raises falls back to its reference silently (a warning): every CPU test would
    # still pass on the slow path, so any test that makes one fail is failed here instead
    from nanovl.ops import dispatch

    yield
    failed = {k: v for k, v in dispatch.kernel_failures().items() if k.endswith("[cpu]")}
    assert not failed, f"CPU twins fell back to their references: {failed}"
