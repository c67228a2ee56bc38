"""Images -> normalised tile tensors (SPEC Part E, 5a): loading, the tile grid, tiling.

Resize kernel (SPEC Part E allows either): torch `F.interpolate(mode="bicubic",
align_corners=False, antialias=True)` on float pixels in [0, 1], then clamped to [0, 1] — the
newer vLLM path. The same helper resizes video frames, so images and frames match numerically.
"""
from __future__ import annotations

import base64
import binascii
import io
import os
from functools import lru_cache
from typing import Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageOps, UnidentifiedImageError

from nanovl.inputs.errors import MediaError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
# 64 MP (an 8000x8000 scan) stays below PIL's own warning threshold of ~89 MP
DEFAULT_MAX_PIXELS = 64_000_000
# formats PIL decodes in-process (JPEG covers MPO); EPS (ghostscript), SVG, headerless raw
# formats and the rest are refused
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "AVIF")

MediaSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]


def media_name(src: object, kind: str) -> str:
    """The name an error message uses for `src`: its path, "data URI", "<kind> bytes", ..."""
    if isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        return "data URI" if isinstance(path, str) and path.startswith("data:") else str(path)
    if isinstance(src, (bytes, bytearray, memoryview)):
        return f"{kind} bytes"
    if isinstance(src, Image.Image):
        return "PIL image"
    return f"{kind} input"


def as_file(src: MediaSource, name: str) -> Union[str, io.BytesIO]:
    """A path to open, or an in-memory file for bytes and `data:...;base64,` URIs."""
    if isinstance(src, (bytes, bytearray, memoryview)):
        data = bytes(src)
    elif isinstance(src, (str, os.PathLike)):
        path = os.fspath(src)
        if not (isinstance(path, str) and path.startswith("data:")):
            if not os.path.exists(path):
                raise MediaError(name, "no such file")
            if os.path.isdir(path):
                raise MediaError(name, "is a directory, not a file")
            return path
        data = _decode_data_uri(path, name)
    else:
        raise MediaError(name, f"unsupported source type {type(src).__name__}")
    if not data:
        raise MediaError(name, "empty input (0 bytes)")
    return io.BytesIO(data)


def _decode_data_uri(uri: str, name: str) -> bytes:
    header, sep, payload = uri.partition(",")
    if not sep or not header.endswith(";base64"):
        raise MediaError(name, "only base64 data URIs (data:<type>;base64,...) are supported")
    try:
        # line breaks and spaces are common in pasted base64
        return base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError) as e:
        raise MediaError(name, f"invalid base64 payload ({e})") from None


@lru_cache(maxsize=1)
def _open_formats() -> tuple[str, ...]:
    # AVIF is only registered when this Pillow build has libavif
    Image.init()
    return tuple(f for f in ALLOWED_FORMATS if f in Image.OPEN)


def _check_size(size: tuple[int, int], name: str, max_pixels: int) -> None:
    width, height = size
    if width <= 0 or height <= 0:
        raise MediaError(name, f"empty image ({width}x{height} pixels)")
    if width * height > max_pixels:
        raise MediaError(name, f"{width}x{height} = {width * height} pixels is more than the "
                               f"limit of {max_pixels}")


def load_image(src: Union[MediaSource, Image.Image], *, name: str | None = None,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode an image from a path, bytes, a base64 data URI or a PIL image.

    The header size is checked against `max_pixels` before any pixel is decoded; EXIF
    orientation is applied; multi-frame files (GIF, TIFF) give their first frame.

    Returns:
        PIL image in mode "RGB".
    Raises:
        MediaError naming the input for anything unreadable, unsupported, empty or too large.
    """
    name = name or media_name(src, "image")
    if isinstance(src, Image.Image):
        _check_size(src.size, name, max_pixels)
        return _decode(src, name)
    fp = as_file(src, name)
    try:
        with Image.open(fp, formats=_open_formats()) as image:
            _check_size(image.size, name, max_pixels)
            return _decode(image, name)
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        raise MediaError(name, f"rejected as a decompression bomb ({e})") from None
    except UnidentifiedImageError:
        raise MediaError(name, "not a supported image format (expected one of "
                               f"{', '.join(ALLOWED_FORMATS)})") from None
    except PermissionError:
        raise MediaError(name, "permission denied") from None
    except Exception as e:
        # a plugin that recognised the header can still fail on the rest of it
        raise MediaError(name, f"corrupt or unreadable image ({type(e).__name__}: {e})") from None


def _decode(image: Image.Image, name: str) -> Image.Image:
    # PIL decodes lazily and raises many types (OSError, SyntaxError, struct.error, ...)
    try:
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))
    except MediaError:
        raise
    except Image.DecompressionBombError as e:
        raise MediaError(name, f"rejected as a decompression bomb ({e})") from None
    except Exception as e:
        raise MediaError(name, f"corrupt or unreadable image ({type(e).__name__}: {e})") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB: alpha composited on white, 16-bit/float scaled to 8 bits."""
    mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        canvas.alpha_composite(rgba)
        return canvas.convert("RGB")
    if mode.startswith("I") or mode == "F":
        # PIL's own I;16 -> RGB clips at 255 instead of scaling, which whitens the image
        return Image.fromarray(_gray_to_uint8(np.asarray(image), mode), "L").convert("RGB")
    return image.convert("RGB")


def _gray_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """I;16 -> /257; I and F: [0, 1] floats x255, values <= 255 as is, else a 16-bit range."""
    x = arr.astype(np.float64)
    top = float(x.max()) if x.size else 0.0
    if mode.startswith("I;16") or top > 255:
        x = np.clip(x, 0, 65535) / 257.0
    elif mode == "F" and top <= 1.0:
        x = x * 255.0
    return np.round(np.clip(x, 0, 255)).astype(np.uint8)


@lru_cache(maxsize=None)
def candidate_grids(max_tiles: int) -> tuple[tuple[int, int], ...]:
    """All (cols, rows) with cols*rows <= max_tiles, sorted by cols*rows.

    NOTE: InternVL sorts a Python set, so its order among equal products is hash-defined; we
    build the list with cols then rows ascending and sort stably, which is deterministic. The
    order is never observable: no two grids of equal product can tie for the closest aspect
    ratio for max_tiles <= 64 (checked exhaustively in tests/inputs/test_image_grid.py).
    """
    grids = [(c, r) for c in range(1, max_tiles + 1) for r in range(1, max_tiles + 1)
             if c * r <= max_tiles]
    return tuple(sorted(grids, key=lambda g: g[0] * g[1]))


def tile_grid(width: int, height: int, max_tiles: int, image_size: int = 512) -> tuple[int, int]:
    """The tile grid (cols, rows) for a width x height image (InternVL closest aspect ratio).

    Candidates are visited in `candidate_grids` order, keeping the smallest |W/H - c/r| in
    float arithmetic (as the reference does: float rounding decides some near-ties, e.g.
    7x6 -> (4, 3)); on an exact tie the later, larger grid replaces the kept one iff
    W*H > 0.5 * image_size^2 * c*r.
    """
    if width <= 0 or height <= 0 or max_tiles < 1:
        raise ValueError(f"tile_grid needs a positive size and max_tiles >= 1, got "
                         f"{width}x{height}, max_tiles={max_tiles}")
    aspect = width / height
    area = width * height
    best, best_diff = (1, 1), float("inf")
    for cols, rows in candidate_grids(max_tiles):
        diff = abs(aspect - cols / rows)
        if diff < best_diff:
            best, best_diff = (cols, rows), diff
        elif diff == best_diff and area > 0.5 * image_size * image_size * cols * rows:
            best = (cols, rows)
    return best


def num_image_tiles(width: int, height: int, max_tiles: int, use_thumbnail: bool,
                    image_size: int = 512) -> int:
    """Tiles `image_to_tiles` makes for this size: cols*rows, plus 1 thumbnail if that is > 1."""
    cols, rows = tile_grid(width, height, max_tiles, image_size)
    num_tiles = cols * rows
    return num_tiles + 1 if use_thumbnail and num_tiles > 1 else num_tiles


def pil_to_float(image: Image.Image) -> torch.Tensor:
    """RGB PIL image -> [1, 3, H, W] float32 in [0, 1]."""
    arr = np.array(to_rgb(image) if image.mode != "RGB" else image, dtype=np.uint8)
    return torch.from_numpy(arr).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)


def resize_bicubic(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bicubic antialiased resize of [N, 3, H, W] floats in [0, 1] -> [N, 3, height, width]."""
    if x.shape[-2:] == (height, width):
        return x.clone()
    out = F.interpolate(x, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    # bicubic overshoots at edges; the reference clamps back to the valid pixel range
    return out.clamp_(0.0, 1.0)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """(x - mean) / std per channel. x: [N, 3, H, W] in [0, 1]."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return (x - m) / s


def normalize_(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """`normalize` in place on a tensor the caller owns, bit for bit the same values: the same
    subtraction and division without the two full-size temporaries (a 12-tile 512 px image is
    9.4 M floats). x: [N, 3, H, W] in [0, 1], overwritten and returned."""
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return x.sub_(m).div_(s)


def image_to_tiles_ref(image: Image.Image, *, image_size: int = 512, max_tiles: int = 12,
                       use_thumbnail: bool = True, mean: Sequence[float] = CLIP_MEAN,
                       std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """Dynamic tiling: resize to the chosen grid, cut tiles row-major, thumbnail last.

    The plain twin of `image_to_tiles` (reshape copy, cat, out-of-place normalise), equal to it bit
    for bit; tests and bench/bench_preprocess.py hold the two together.

    Args:
        image: PIL image (any mode; converted to RGB).
    Returns:
        [N, 3, image_size, image_size] float32, normalised; N = num_image_tiles(...).
    """
    cols, rows = tile_grid(image.width, image.height, max_tiles, image_size)
    s, x = image_size, pil_to_float(image)
    grid = resize_bicubic(x, rows * s, cols * s)
    tiles = grid.view(3, rows, s, cols, s).permute(1, 3, 0, 2, 4).reshape(rows * cols, 3, s, s)
    if use_thumbnail and rows * cols > 1:
        tiles = torch.cat([tiles, resize_bicubic(x, s, s)])
    return normalize(tiles, mean, std).contiguous()


def image_to_tiles(image: Image.Image, *, image_size: int = 512, max_tiles: int = 12,
                   use_thumbnail: bool = True, mean: Sequence[float] = CLIP_MEAN,
                   std: Sequence[float] = CLIP_STD) -> torch.Tensor:
    """Dynamic tiling: resize to the chosen grid, cut tiles row-major, thumbnail last.

    Args:
        image: PIL image (any mode; converted to RGB).
    Returns:
        [N, 3, image_size, image_size] float32, normalised; N = num_image_tiles(...).
    """
    cols, rows = tile_grid(image.width, image.height, max_tiles, image_size)
    s, n = image_size, rows * cols
    x = pil_to_float(image)  # [1, 3, H, W]
    grid = resize_bicubic(x, rows * s, cols * s)  # [1, 3, rows*S, cols*S]
    thumb = use_thumbnail and n > 1
    # one output buffer: the tiles are cut into it by a single strided copy (tile k sits at row
    # k // cols, column k % cols), the thumbnail written after them and all normalised in place
    out = torch.empty(n + thumb, 3, s, s, dtype=grid.dtype)
    out[:n].view(rows, cols, 3, s, s).copy_(grid.view(3, rows, s, cols, s).permute(1, 3, 0, 2, 4))
    if thumb:
        out[n:] = resize_bicubic(x, s, s)
    return normalize_(out, mean, std)
