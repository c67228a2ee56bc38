"""load_image: sources, EXIF, mode conversion and bad media; run: pytest tests/inputs/test_image_load.py"""
from __future__ import annotations

import base64
import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from nanovl.inputs.errors import MediaError
from nanovl.inputs.image import load_image


def png_bytes(image, **kw):
    buf = io.BytesIO()
    image.save(buf, "PNG", **kw)
    return buf.getvalue()


def png_header_only(width, height):
    """A PNG whose IHDR claims width x height but whose pixel data is a few garbage bytes."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", b"\x01\x02garbage")
            + chunk(b"IEND", b""))


def test_sources_path_bytes_data_uri_pil(tmp_path):
    image = Image.new("RGB", (5, 3), (10, 20, 30))
    data = png_bytes(image)
    path = tmp_path / "a.png"
    path.write_bytes(data)
    uri = "data:image/png;base64," + base64.b64encode(data).decode()
    for src in (path, str(path), data, bytearray(data), uri, image):
        out = load_image(src)
        assert out.mode == "RGB" and out.size == (5, 3) and out.getpixel((4, 2)) == (10, 20, 30)


def test_exif_orientation_applied():
    # stored 20x10, left half red, right half blue; orientation 6 = rotate 90 deg clockwise
    stored = Image.new("RGB", (20, 10), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=95, exif=exif)
    out = load_image(buf.getvalue())
    assert out.size == (10, 20)
    top, bottom = np.asarray(out)[2, 5].astype(int), np.asarray(out)[17, 5].astype(int)
    assert np.abs(top - (255, 0, 0)).max() < 40 and np.abs(bottom - (0, 0, 255)).max() < 40


@pytest.mark.parametrize("mode,value,expected", [
    ("RGBA", (255, 0, 0, 128), (255, 127, 127)),  # half-transparent red over white
    ("RGBA", (0, 0, 0, 0), (255, 255, 255)),      # fully transparent -> white
    ("LA", (0, 255), (0, 0, 0)),                   # opaque black
    ("L", 77, (77, 77, 77)),
    ("1", 1, (255, 255, 255)),
    ("CMYK", (0, 255, 255, 0), (255, 0, 0)),
    ("CMYK", (0, 0, 0, 255), (0, 0, 0)),
    ("I;16", 65535, (255, 255, 255)),              # 16-bit full scale, not clipped garbage
    ("I;16", 32896, (128, 128, 128)),              # 32896 / 257 = 128
    ("I", 12850, (50, 50, 50)),                    # 16-bit range in a 32-bit image: /257
    ("F", 0.5, (128, 128, 128)),                   # [0, 1] floats
])
def test_modes_to_rgb(mode, value, expected):
    out = load_image(Image.new(mode, (4, 4), value))
    assert out.mode == "RGB"
    assert np.abs(np.asarray(out)[1, 1].astype(int) - expected).max() <= 1


def test_16bit_png_file():
    image = Image.fromarray(np.full((4, 4), 51400, dtype=np.uint16))  # 51400 / 257 = 200
    out = load_image(png_bytes(image))
    assert out.getpixel((0, 0)) == (200, 200, 200)


def test_palette_with_transparency_composited_on_white():
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    buf = io.BytesIO()
    image.save(buf, "GIF", transparency=1)
    assert load_image(buf.getvalue()).getpixel((2, 2)) == (255, 255, 255)


def _raises(src, *words, **kw):
    with pytest.raises(MediaError) as info:
        load_image(src, **kw)
    for word in words:
        assert word in str(info.value), str(info.value)
    return info.value


def test_text_and_svg_are_unsupported(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello, not an image\n")
    _raises(text, str(text), "not a supported image")
    svg = b"<svg xmlns='http://www.w3.org/2000/svg' width='10' height='10'/>"
    err = _raises(svg, "image bytes", "not a supported image")
    assert isinstance(err, ValueError)
    _raises(svg, "image #2", name="image #2")


def test_corrupt_and_truncated():
    data = png_bytes(Image.effect_noise((64, 64), 50).convert("RGB"))
    _raises(data[: len(data) // 2], "image bytes", "corrupt")
    _raises(png_header_only(8, 8), "corrupt")


def test_zero_size_and_empty():
    _raises(Image.new("RGB", (0, 5)), "PIL image", "empty image")
    _raises(png_header_only(0, 5), "image bytes")
    _raises(b"", "empty input")


def test_pixel_limit_checked_before_decoding():
    # the pixel data is garbage, so a decode attempt would say "corrupt", not "limit"
    _raises(png_header_only(3000, 3000), "3000x3000", "limit of 1000000", max_pixels=1_000_000)
    _raises(png_header_only(9000, 9000), "limit of 64000000")  # default limit
    _raises(Image.new("RGB", (20, 20)), "limit", max_pixels=399)


def test_pil_decompression_bomb_error_is_mapped():
    # 400 MP is over PIL's own hard limit, which fires inside Image.open
    _raises(png_header_only(20000, 20000), "decompression bomb", max_pixels=10**12)


def test_missing_directory_and_bad_uri(tmp_path):
    _raises(tmp_path / "nope.png", "nope.png", "no such file")
    _raises(tmp_path, "is a directory")
    _raises("data:image/png;base64,@@@", "data URI", "base64")
    _raises("data:image/png,rawtext", "data URI")
    with pytest.raises(MediaError, match="unsupported source type"):
        load_image(12345)
