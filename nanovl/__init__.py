"""nanovl: a small, fast engine for Nemotron Nano 2 VL-class hybrid Mamba2/attention VLMs."""
from __future__ import annotations

__version__ = "0.1.0"


def load_model(path, *, dtype=None, device="cpu"):
    """Load a checkpoint folder (or hub id) into a model; see nanovl.model.loader.load_model."""
    import torch

    from nanovl.model.loader import load_model as _load

    return _load(path, dtype=torch.float32 if dtype is None else dtype, device=device)


__all__ = ["load_model", "__version__"]
