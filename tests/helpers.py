"""Helpers shared by the tests: numerics, bench scripts as modules, the reading-model mark, test videos,
a server thread."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
import torch

BENCH_DIR = Path(__file__).resolve().parents[1] / "bench"


def load_bench(name: str) -> ModuleType:
    """The script bench/<name>.py as a module (bench/ is not a package), so a test can call its main()."""
    spec = importlib.util.spec_from_file_location(name, BENCH_DIR / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def assert_close(name: str, ref: torch.Tensor, out: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-5) -> None:
    """Assert `out` matches `ref`; on failure print max/mean abs diff and the max relative error."""
    ref32, out32 = ref.detach().float(), out.detach().float()
    assert ref32.shape == out32.shape, f"{name}: shape {tuple(out32.shape)} != {tuple(ref32.shape)}"
    diff = (ref32 - out32).abs()
    rel = (diff.max() / ref32.abs().max().clamp_min(1e-12)).item()
    ok = torch.allclose(out32, ref32, atol=atol, rtol=rtol)
    assert ok, (f"{name}: max abs diff {diff.max().item():.3e}, mean {diff.mean().item():.3e}, "
                f"rel {rel:.3e} (atol {atol}, rtol {rtol})")


# The bundled tiny model (v11: 37495 GPU steps, 2026-12-03) reads its images well (invoice fields 96-100 %,
# 92 % of line items exact, 96 % of a tile's digits) but not yet every value of a page: README's eval table
# and docs/TRAINING_NOTES.md. Tests of answer *content* it still fails carry this mark. It is strict and
# limited to AssertionError: a crash still fails, and a checkpoint that passes such a test turns
# CI red until the mark is removed, so the mark cannot outlive the problem.
needs_reading_model = pytest.mark.xfail(
    strict=True, raises=AssertionError,
    reason="bundled tiny model v11 does not read every digit and value yet (README eval, docs/TRAINING_NOTES.md)")


def write_gray_mp4(path, num_frames: int, shade_step: int, *, size: int = 32, rate: int = 4) -> str:
    """A small mp4 (PyAV, mpeg4) of `num_frames` flat gray frames, frame i at shade (i * shade_step) % 256,
    `rate` frames a second; returns the path as a string."""
    from fractions import Fraction

    import av
    import numpy as np

    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.width = stream.height = size
        stream.pix_fmt, stream.time_base = "yuv420p", Fraction(1, rate)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(np.full((size, size, 3), (i * shade_step) % 256, np.uint8),
                                               format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def start_server_thread(engine, settings=None):
    """A real uvicorn server (ServerThread, started) over `engine` (an LLMEngine); the thread keeps
    `.engine` and `.async_engine` for tests that look inside. Stop it with `.stop()`."""
    from nanovl.engine.async_engine import AsyncEngine
    from nanovl.server.app import ServerThread, build_app
    from nanovl.server.state import ServerSettings

    async_engine = AsyncEngine(engine)
    srv = ServerThread(build_app(async_engine, settings or ServerSettings())).start()
    srv.engine, srv.async_engine = engine, async_engine
    return srv
