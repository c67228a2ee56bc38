"""Helpers for tests and demos: random checkpoints in the official layout."""
from nanovl.testing.random_checkpoint import (
    text_checkpoint_shapes,
    vl_checkpoint_shapes,
    write_random_text_checkpoint,
    write_random_vl_checkpoint,
)

__all__ = ["text_checkpoint_shapes", "vl_checkpoint_shapes", "write_random_text_checkpoint",
           "write_random_vl_checkpoint"]
