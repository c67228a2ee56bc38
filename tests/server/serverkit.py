"""Helpers of the server tests: media bytes (PNG, mp4 via PyAV), message builders, error-shape check."""
from __future__ import annotations

import base64
import io
from pathlib import Path

import httpx
from helpers import write_gray_mp4

# the checkpoint folder's name, which the server reports as the model id
MODEL_NAME = "tiny-vl"
MAX_MODEL_LEN = 400


def png_bytes(size=(32, 32), color=(200, 30, 30)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()


def mp4_bytes(path, num_frames: int = 8, size: int = 32) -> bytes:
    """A small mp4 (gray frames getting lighter) written with PyAV; returns its bytes."""
    return Path(write_gray_mp4(path, num_frames, 30, size=size)).read_bytes()


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def user(*parts, text: str = "describe") -> list[dict]:
    return [{"role": "user", "content": [*parts, {"type": "text", "text": text}]}]


def assert_openai_error(resp: httpx.Response, status: int) -> dict:
    """The response has `status` and OpenAI's error shape; returns the error object."""
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["type"], str) and {"param", "code"} <= set(err)
    return err
