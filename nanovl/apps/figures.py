"""Saving the workflows' matplotlib pictures at exactly the path the user gave."""
from __future__ import annotations

import warnings
from pathlib import Path


def save_figure(fig, path: str, *, dpi: int = 100) -> str:
    """Write `fig` to `path` itself and close it; returns the path written.

    The format follows the extension when matplotlib knows it (.png, .svg, .pdf, .jpg, ...),
    else PNG. matplotlib alone would append ".png" to a path without an extension.
    """
    import matplotlib.pyplot as plt

    suffix = Path(path).suffix.lower().lstrip(".")
    fmt = suffix if suffix in fig.canvas.get_supported_filetypes() else "png"
    try:
        if Path(path).is_dir():
            raise IsADirectoryError(f"{path} is a folder; give a file path for the picture")
        with warnings.catch_warnings():
            # captions may hold characters the default font lacks; they are drawn as boxes
            warnings.filterwarnings("ignore", message="Glyph .* missing")
            fig.savefig(path, dpi=dpi, format=fmt)
    finally:
        plt.close(fig)
    return str(path)
