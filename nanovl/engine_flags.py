"""The engine's command-line flags: one --kebab-case flag per EngineConfig field (model excepted),
shared by `nanovl serve | run | chat` and `nanovl batch`; unset flags keep the defaults."""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any


def add_engine_flags(p: argparse.ArgumentParser) -> None:
    """Add an "engine (EngineConfig)" group with a flag per field; booleans get --x / --no-x."""
    from nanovl.engine.engine import EngineConfig

    hints = typing.get_type_hints(EngineConfig)
    g = p.add_argument_group("engine (EngineConfig)")
    for f in dataclasses.fields(EngineConfig):
        if f.name == "model":
            continue
        kind = hints[f.name]
        base = next((t for t in typing.get_args(kind) if t is not type(None)), kind)
        flag = "--" + f.name.replace("_", "-")
        if base is bool:
            g.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            g.add_argument(flag, type=base, default=None, metavar=base.__name__.upper(),
                           help=f"default: {f.default!r}")


def engine_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The engine flags the user set, as EngineConfig keyword arguments."""
    from nanovl.engine.engine import EngineConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(EngineConfig)
            if f.name != "model" and getattr(args, f.name, None) is not None}
