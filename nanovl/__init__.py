"""nanovl: a small, fast engine for Nemotron Nano 2 VL-class hybrid Mamba2/attention VLMs."""
from __future__ import annotations

import torch

__version__ = "0.1.0"


def load_model(path, *, dtype=torch.float32, device="cpu", **kwargs):
    """Load a checkpoint folder (or hub id) into a model; see nanovl.model.loader.load_model."""
    from nanovl.model.loader import load_model as _load

    return _load(path, dtype=dtype, device=device, **kwargs)


__all__ = ["load_model", "__version__"]
