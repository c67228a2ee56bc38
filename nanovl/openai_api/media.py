"""Media of a request without a network: data URIs, and files below one allowed root.

The one implementation of these checks: batch jobs call `resolve_local_media`, and the server
(server/media.py, which adds vetted http(s) downloads) calls the pieces. `..` and symlinks out of
the root are refused, FIFOs and folders too; http(s) is refused here.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from nanovl.openai_api.errors import RequestError

MEDIA_KEYS = ("image_url", "video_url")


@dataclass(frozen=True)
class LocalMediaPolicy:
    """Where media may come from: `allowed_root` (None: no files), with the server's default limits."""

    allowed_root: Path | None = None
    max_media_count: int = 16
    max_media_bytes: int = 64 * 1024 * 1024


# checked_path and read_checked read only these fields, so the server's MediaPolicy serves as well


def media_items(messages: list[dict[str, Any]], max_count: int) -> list[tuple[dict[str, Any], str]]:
    """(the {"url", ...} dict, its name for errors) of every media part, at most `max_count` of them."""
    parts = [p for m in messages if isinstance(m.get("content"), list)
             for p in m["content"] if p.get("type") in MEDIA_KEYS]
    if len(parts) > max_count:
        raise RequestError(400, f"too many media items: {len(parts)} > --max-media-count {max_count}",
                           param="messages", code="too_many_media")
    return [(part[part["type"]], f"{part['type']} #{k + 1}") for k, part in enumerate(parts)]


def resolve_local_media(messages: list[dict[str, Any]], policy: LocalMediaPolicy) -> list[dict[str, Any]]:
    """Rewrite each media part's url in place to a data URI (unchanged) or the file's bytes; returns `messages`."""
    for media, name in media_items(messages, policy.max_media_count):
        media["url"] = load_local(media["url"], policy, name=name)
    return messages


def load_local(url: str, policy: LocalMediaPolicy, *, name: str) -> str | bytes:
    """One media URL -> the data URI itself, or the bytes of the file it names under the root."""
    scheme = urlsplit(url).scheme.lower() if "://" in url or url.startswith("data:") else ""
    if scheme == "data":
        # refuse oversize payloads before anyone decodes them
        if data_uri_num_bytes(url) > policy.max_media_bytes:
            raise too_large(name, policy)
        return url
    if scheme not in ("", "file"):
        raise RequestError(400, f"{name}: {scheme}: URLs are not fetched here (use data: URIs or files under the "
                                "allowed media root)", param="messages", code="invalid_media")
    return read_checked(checked_path(url, policy, name=name), policy, name=name)


def data_uri_num_bytes(url: str) -> int:
    """Bytes a `data:` URI's payload decodes to, counted without decoding it."""
    header, _, payload = url.partition(",")
    if not header.endswith(";base64"):
        return len(payload)
    # 3 bytes per 4 characters, less one per "=" of padding; line breaks in pasted base64 do not count
    num_chars = len(payload) - sum(payload.count(c) for c in " \t\n\r\f\v")
    return num_chars * 3 // 4 - payload.rstrip()[-2:].count("=")


def checked_path(url: str, policy, *, name: str) -> Path:
    """The real path of a file URL or plain path (relative ones from the root), if it lies under the root."""
    if policy.allowed_root is None:
        raise RequestError(400, f"{name}: local file media is disabled (no allowed media root: "
                                "--allowed-media-root DIR)",
                           param="messages", code="local_media_disabled")
    raw = url
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise RequestError(400, f"{name}: file URLs must not name a host", param="messages", code="invalid_media")
        raw = unquote(parts.path)
    if "\x00" in raw or ".." in Path(raw).parts:
        raise _outside(name)
    root = policy.allowed_root.resolve()
    # resolve() follows every symlink, so a link pointing out of the root is caught too
    path = (root / raw).resolve()
    if path != root and root not in path.parents:
        raise _outside(name)
    return path


def read_checked(path: Path, policy, *, name: str) -> bytes:
    """A regular file's bytes, at most max_media_bytes; no link followed after the check, no FIFO waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise RequestError(400, f"{name}: no such file under the media root", param="messages", code="invalid_media")
    except OSError as err:
        raise RequestError(400, f"{name}: cannot open the file ({err.strerror})", param="messages",
                           code="invalid_media")
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RequestError(400, f"{name}: not a regular file", param="messages", code="invalid_media")
    try:
        with os.fdopen(fd, "rb") as f:
            data = f.read(policy.max_media_bytes + 1)
    except OSError as err:
        raise RequestError(400, f"{name}: cannot read the file ({err.strerror})", param="messages",
                           code="invalid_media")
    if len(data) > policy.max_media_bytes:
        raise too_large(name, policy)
    return data


def too_large(name: str, policy) -> RequestError:
    return RequestError(413, f"{name}: larger than --max-media-bytes {policy.max_media_bytes}",
                        param="messages", code="media_too_large")


def _outside(name: str) -> RequestError:
    return RequestError(400, f"{name}: the path leaves the allowed media root; refused",
                        param="messages", code="forbidden_path")
