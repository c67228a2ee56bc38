"""Where the server may read media from: data URIs, files under one root, vetted remote URLs.

`resolve_media(messages, policy)` rewrites every image/video URL of a chat request into
something the processor reads without further I/O decisions (a data URI or the bytes), or
raises APIError. Local files are read only below `--allowed-media-root` (symlinks resolved
first); http(s) only with `--allow-remote-media`, and the host is resolved and every address
checked before any connection, which then goes to the checked address (no second lookup).
"""
from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

from nanovl.openai_api.media import checked_path, data_uri_num_bytes, media_items, read_checked, too_large
from nanovl.server.errors import APIError

MAX_REDIRECTS = 3
NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True)
class MediaPolicy:
    """Limits and sources for request media (the serve command's flags)."""

    allowed_root: Path | None = None
    allow_remote: bool = False
    max_media_count: int = 16
    max_media_bytes: int = 64 * 1024 * 1024
    fetch_timeout_s: float = 20.0


async def resolve_media(messages: list[dict[str, Any]], policy: MediaPolicy) -> list[dict[str, Any]]:
    """Check the count and rewrite each media part's url in place; returns `messages`."""
    for media, name in media_items(messages, policy.max_media_count):
        media["url"] = await load_source(media["url"], policy, name=name)
    return messages


async def load_source(url: str, policy: MediaPolicy, *, name: str) -> str | bytes:
    """One media URL -> a data URI (unchanged) or the bytes of a file or download."""
    scheme = urlsplit(url).scheme.lower() if "://" in url or url.startswith("data:") else ""
    if scheme == "data":
        # refuse oversize payloads before anyone decodes them
        if data_uri_num_bytes(url) > policy.max_media_bytes:
            raise too_large(name, policy)
        return url
    if scheme in ("http", "https"):
        if not policy.allow_remote:
            raise APIError(400, f"{name}: remote media URLs are disabled on this server "
                                "(start it with --allow-remote-media)", param="messages", code="remote_media_disabled")
        return await fetch_remote(url, policy, name=name)
    if scheme in ("", "file"):
        path = checked_path(url, policy, name=name)
        return await asyncio.to_thread(read_checked, path, policy, name=name)
    raise APIError(400, f"{name}: unsupported URL scheme {scheme!r} (use data:, file:, http: or https:)",
                   param="messages", code="invalid_media")


# ------------------------------------------------------------------ remote URLs
def is_public_address(addr: str) -> bool:
    """True only for globally routable unicast addresses (no loopback, private, link-local, ...)."""
    ip = ipaddress.ip_address(addr.split("%", 1)[0])
    embedded = []
    if ip.version == 6:
        embedded = [a for a in (ip.ipv4_mapped, ip.sixtofour, ip.teredo and ip.teredo[1]) if a]
        # NAT64 (64:ff9b::/96) reaches the IPv4 address in its last 32 bits
        if ip in NAT64:
            embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    for a in [ip, *embedded]:
        if (not a.is_global or a.is_private or a.is_loopback or a.is_link_local or a.is_multicast
                or a.is_reserved or a.is_unspecified):
            return False
    return True


async def resolve_public(host: str, port: int, *, name: str) -> list[str]:
    """Resolve `host` and return its addresses, refusing if any one of them is not public."""
    try:
        infos = await asyncio.to_thread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as err:
        raise APIError(400, f"{name}: cannot resolve host {host!r} ({err})", param="messages", code="invalid_media")
    addrs = list(dict.fromkeys(info[4][0] for info in infos))
    bad = [a for a in addrs if not is_public_address(a)]
    if not addrs or bad:
        raise APIError(400, f"{name}: host {host!r} resolves to a non-public address {bad[:1]}; refused",
                       param="messages", code="forbidden_address")
    return addrs


async def fetch_remote(url: str, policy: MediaPolicy, *, name: str) -> bytes:
    """GET `url` (redirects re-checked hop by hop), at most `max_media_bytes` bytes."""
    try:
        import httpx
    except ImportError:
        raise APIError(400, f"{name}: remote media needs the httpx package on the server", code="invalid_media")
    timeout = httpx.Timeout(policy.fetch_timeout_s)
    async with httpx.AsyncClient(timeout=timeout, follow_redirects=False, trust_env=False) as client:
        for _ in range(MAX_REDIRECTS + 1):
            target, headers, extensions = await _pinned_request(url, name)
            try:
                async with client.stream("GET", target, headers=headers, extensions=extensions) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status_code != 200:
                        raise APIError(400, f"{name}: fetching the URL returned HTTP {resp.status_code}",
                                       param="messages", code="invalid_media")
                    return await _read_limited(resp, policy, name)
            except httpx.HTTPError as err:
                raise APIError(400, f"{name}: fetching the URL failed ({type(err).__name__})",
                               param="messages", code="invalid_media")
    raise APIError(400, f"{name}: more than {MAX_REDIRECTS} redirects", param="messages", code="invalid_media")


async def _pinned_request(url: str, name: str) -> tuple[str, dict[str, str], dict[str, Any]]:
    """The URL rewritten to a vetted IP, with the Host header and TLS name of the original."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise APIError(400, f"{name}: only http(s) URLs with a host can be fetched", param="messages",
                       code="invalid_media")
    if parts.username or parts.password:
        raise APIError(400, f"{name}: URLs with credentials are refused", param="messages", code="invalid_media")
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise APIError(400, f"{name}: bad port in URL", param="messages", code="invalid_media")
    host = parts.hostname
    ip = (await resolve_public(host, port, name=name))[0]
    netloc = (f"[{ip}]" if ":" in ip else ip) + f":{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = host if parts.port is None else f"{host}:{parts.port}"
    return target, {"Host": host_header}, {"sni_hostname": host}


async def _read_limited(resp, policy: MediaPolicy, name: str) -> bytes:
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > policy.max_media_bytes:
        raise too_large(name, policy)
    chunks, total = [], 0
    async for chunk in resp.aiter_bytes():
        total += len(chunk)
        if total > policy.max_media_bytes:
            raise too_large(name, policy)
        chunks.append(chunk)
    return b"".join(chunks)
