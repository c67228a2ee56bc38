"""MediaError: the one exception for bad client media (unreadable, corrupt, too large, empty).

It subclasses ValueError so callers that already map ValueError to a client error (HTTP 4xx)
keep working; the message always starts with the name of the input.
"""
from __future__ import annotations


class MediaError(ValueError):
    """Bad media input. `str(err)` is "<name>: <problem>", e.g. "image #2: not an image"."""

    def __init__(self, name: str, problem: str):
        self.name = name
        self.problem = problem
        super().__init__(f"{name}: {problem}")
