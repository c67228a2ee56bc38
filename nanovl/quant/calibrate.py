"""Calibration for FP8 post-training quantization: the largest |x| each language-model projection's
input reaches while the model answers calibration requests (ModelOpt's "max" calibration, which
sets the static `input_scale = amax / 448` of its FP8 checkpoints).

Which projections: every linear layer of the language model but `lm_head`. The vision tower
(`vision_model.*`) and projector (`mlp1.*`) stay unquantized, as in NVIDIA's FP8 releases.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import torch
from torch import nn

LM_HEAD = "lm_head"


def projection_names(model: nn.Module) -> list[str]:
    """Module names of the projections to quantize: the LM's linear layers but lm_head.

    Args:
        model: a NemotronVL (names under `language_model.`) or a NemotronHForCausalLM.
    """
    lm = getattr(model, "language_model", model)
    prefix = "language_model." if lm is not model else ""
    return [prefix + name for name, module in lm.named_modules()
            if isinstance(module, nn.Linear) and name != LM_HEAD]


def key_map_of(model: nn.Module) -> Callable[[str], str | None]:
    """The checkpoint key -> module name map `load_model` filled `model` with."""
    from nanovl.model.loader import lm_key_map
    from nanovl.model.vlm import NemotronVL, vl_key_map

    return vl_key_map if isinstance(model, NemotronVL) else lm_key_map


def checkpoint_prefixes(model: nn.Module, folder: str | Path, names: Iterable[str]) -> dict[str, str]:
    """Module name -> checkpoint prefix (its weight's key without `.weight`) for the checkpoint in
    `folder` that `model` was loaded from: `language_model.backbone...` in a VL checkpoint whether
    the VL model or its LM alone was loaded, `backbone...` in a text-only one.

    Raises ValueError naming a module whose weight the checkpoint does not hold.
    """
    from nanovl.model.loader import read_checkpoint_shapes

    key_map = key_map_of(model)
    key_of = {}
    for key in read_checkpoint_shapes(folder):
        name = key_map(key)
        if name is not None:
            key_of[name] = key
    out = {}
    for name in names:
        key = key_of.get(name + ".weight")
        if key is None:
            raise ValueError(f"checkpoint {folder} holds no weight for projection {name}")
        out[name] = key.removesuffix(".weight")
    return out


@contextlib.contextmanager
def recording_input_amax(model: nn.Module, names: Iterable[str]) -> Iterator[dict[str, torch.Tensor]]:
    """Inside the block, the dict it yields holds name -> largest |x| (an fp32 0-dim tensor on the
    model's device, so a GPU run never waits on a read-back) of every input the named linear
    layers took. The hooks are removed on leaving the block, on error too."""
    amax: dict[str, torch.Tensor] = {}
    handles, patched = [], []

    def recorder(name: str) -> Callable[[torch.Tensor], None]:
        def record(x: torch.Tensor) -> None:
            seen = x.detach().abs().amax().float()
            amax[name] = seen if name not in amax else torch.maximum(amax[name], seen)
        return record

    try:
        for name in names:
            module = model.get_submodule(name)
            record = recorder(name)
            handles.append(module.register_forward_pre_hook(lambda _m, args, record=record: record(args[0])))
            # the MLP's up projection runs as `up_proj.forward_relu_square(x)`, which no forward hook
            # sees: an instance attribute shadows the method while calibrating
            if callable(getattr(module, "forward_relu_square", None)):
                module.forward_relu_square = _recording(module.forward_relu_square, record)
                patched.append(module)
        yield amax
    finally:
        for handle in handles:
            handle.remove()
        for module in patched:
            del module.forward_relu_square  # the class's method shows again


def _recording(method: Callable, record: Callable[[torch.Tensor], None]) -> Callable:
    def recorded(x: torch.Tensor, *args, **kwargs):
        record(x)
        return method(x, *args, **kwargs)
    return recorded


@torch.no_grad()
def input_amax(model: nn.Module, names: list[str], run: Callable[[], object]) -> dict[str, float]:
    """The largest |x| each named linear layer receives while `run()` drives the model.

    Raises ValueError naming the projections that took no input (calibration could not set their
    scale: a layer the requests never reach, or a path that bypasses the module's forward).
    """
    with recording_input_amax(model, names) as amax:
        run()
    missing = [n for n in names if n not in amax]
    if missing:
        shown = ", ".join(missing[:4]) + (f", ... ({len(missing)} in all)" if len(missing) > 4 else "")
        raise ValueError(f"calibration never ran projection(s) {shown}")
    return {name: float(amax[name]) for name in names}
