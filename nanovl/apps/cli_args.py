"""Argument checks shared by every nanovl command line (nanovl.cli, the workflows, `nanovl eval`):
one-line usage errors, exit 2.

Everything here runs before any model work, so a typo never costs a finished run.
"""
from __future__ import annotations

import argparse
import math
import os
import typing
from pathlib import Path

USAGE_EXIT = 2


def usage_line(prog: str, message: str) -> str:
    """The one line a usage error prints (every nanovl parser uses it: `nanovl.cli` and the workflows)."""
    return f"nanovl: error: {message} (see '{prog} --help')"


def error_line(err: BaseException) -> str:
    """The one line a failed command prints: its message on one line (its type's name if empty)."""
    return f"nanovl: error: {' '.join(str(err).split()) or type(err).__name__}"


class OneLineParser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump); subparsers inherit the class."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(USAGE_EXIT, usage_line(self.prog, message) + "\n")


def positive_problem(flag: str, value: float | None) -> str | None:
    """Why `value` is no finite number > 0 (None when it is, or when the flag was not given)."""
    if value is None or (math.isfinite(value) and value > 0):
        return None
    return f"{flag} must be a finite number > 0, got {value}"


def output_problem(flag: str, path: str | None) -> str | None:
    """Why a file cannot be written at `path` (None when it can, or when the flag was not given).

    The parent folder must exist and be a folder, and `path` itself must not be a folder.
    """
    if path is None:
        return None
    target = Path(path)
    if target.is_dir() or path.endswith(("/", os.sep)):
        return f"{flag} {path} is a folder; give a file path"
    parent = target.parent
    if not parent.exists():
        return f"{flag} {path}: folder {parent} does not exist"
    if not parent.is_dir():
        return f"{flag} {path}: {parent} is not a folder"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"{flag} {path}: folder {parent} is not writable"
    return None
