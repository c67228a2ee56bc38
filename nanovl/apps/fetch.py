"""Fetch media from http(s) URLs for the apps: size-capped streaming downloads, optional yt-dlp.

Loopback, private, link-local and other non-public addresses are refused unless asked for: the
check runs on the address each connection really reached (after DNS, on every redirect hop), so a
name that resolves to 127.0.0.1 or a redirect to an internal host is caught too.
"""
from __future__ import annotations

import http.client
import ipaddress
import os
import shutil
import socket
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlparse

DEFAULT_MAX_BYTES = 2 * 1024**3
DEFAULT_TIMEOUT_S = 30.0
CHUNK_BYTES = 1 << 16
MAX_REDIRECTS = 5
# page types that hold a player rather than the media itself: yt-dlp's job
_WEB_PAGE_TYPES = ("text/html", "application/xhtml+xml")
YT_DLP_HINT = "pip install yt-dlp (or nanovl[url])"


class FetchError(RuntimeError):
    """A URL could not be fetched; the message says why and what to do."""


def is_url(src: object) -> bool:
    """True for http:// and https:// strings."""
    return isinstance(src, str) and urlparse(src).scheme.lower() in ("http", "https")


def check_address(host: str, *, allow_private: bool = False) -> None:
    """Raise FetchError unless `host` (an IP literal) is a public unicast address."""
    ip = ipaddress.ip_address(host.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return
    if not ip.is_global or ip.is_multicast:
        raise FetchError(f"refusing to fetch from non-public address {ip} (loopback/private/"
                         "link-local); pass --allow-private-urls to allow it")


def _guarded(base: type, allow_private: bool) -> type:
    """An http.client connection class that checks the peer address right after connecting."""

    class Guarded(base):
        def connect(self) -> None:
            super().connect()
            try:
                check_address(self.sock.getpeername()[0], allow_private=allow_private)
            except FetchError:
                self.close()
                raise

    return Guarded


class _HTTP(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._conn = _guarded(http.client.HTTPConnection, allow_private)

    def http_open(self, req):
        return self.do_open(self._conn, req)


class _HTTPS(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self._conn = _guarded(http.client.HTTPSConnection, allow_private)

    def https_open(self, req):
        return self.do_open(self._conn, req, context=self._context)


class _Redirects(urllib.request.HTTPRedirectHandler):
    max_redirections = MAX_REDIRECTS


def _opener(allow_private: bool) -> urllib.request.OpenerDirector:
    # built by hand: no file:// or ftp:// handler, so a redirect cannot leave http(s)
    opener = urllib.request.OpenerDirector()
    for handler in (_HTTP(allow_private), _HTTPS(allow_private), _Redirects(),
                    urllib.request.HTTPDefaultErrorHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


def _file_name(url: str, content_type: str) -> str:
    name = os.path.basename(unquote(urlparse(url).path)) or "download"
    if "." not in name and "/" in content_type:
        name += "." + content_type.split("/")[1].split(";")[0].strip()
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)[:120]


def download(url: str, workdir: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
             timeout: float = DEFAULT_TIMEOUT_S, allow_private: bool = False) -> Path:
    """Stream `url` into `workdir`, aborting past `max_bytes` or `timeout` seconds in total.

    Returns:
        the path of the downloaded file.
    Raises:
        FetchError: non-http(s) URL, refused address, HTTP error, too large, too slow, or a web
            page rather than a media file (the message suggests yt-dlp).
    """
    if not is_url(url):
        raise FetchError(f"only http:// and https:// URLs are fetched, got {url!r:.80}")
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(url, headers={"User-Agent": "nanovl"})
    try:
        with _opener(allow_private).open(request, timeout=timeout) as resp:
            ctype = resp.headers.get("Content-Type", "")
            if ctype.split(";")[0].strip().lower() in _WEB_PAGE_TYPES:
                raise FetchError(f"{url} is a web page ({ctype}), not a media file; for video sites "
                                 f"use --yt-dlp ({YT_DLP_HINT})")
            size = resp.headers.get("Content-Length")
            if size and size.isdigit() and int(size) > max_bytes:
                raise FetchError(f"{url} is {int(size)} bytes, more than the limit of {max_bytes}")
            path = Path(workdir) / _file_name(resp.geturl(), ctype)
            _stream(resp, path, url, max_bytes, deadline)
            return path
    except FetchError:
        raise
    except urllib.error.HTTPError as err:
        raise FetchError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        if isinstance(reason, FetchError):
            raise reason from None
        if isinstance(reason, (socket.timeout, TimeoutError)):
            raise FetchError(f"{url}: timed out after {timeout:g} s") from None
        raise FetchError(f"{url}: {reason}") from None


def _stream(resp, path: Path, url: str, max_bytes: int, deadline: float) -> None:
    received = 0
    try:
        with open(path, "wb") as out:
            while chunk := resp.read(CHUNK_BYTES):
                received += len(chunk)
                if received > max_bytes:
                    raise FetchError(f"{url}: more than the limit of {max_bytes} bytes; download aborted")
                if time.monotonic() > deadline:
                    raise FetchError(f"{url}: download took longer than its time limit; aborted")
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def download_with_ytdlp(url: str, workdir: str | Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                        timeout: float = DEFAULT_TIMEOUT_S, allow_private: bool = False) -> Path:
    """Fetch a video-site page's media with yt-dlp (optional dependency) into `workdir`."""
    try:
        import yt_dlp
    except ImportError:
        raise FetchError(f"yt-dlp is not installed; {YT_DLP_HINT}") from None
    host = urlparse(url).hostname or ""
    try:
        # yt-dlp opens its own connections: check where the name points before handing it over
        for info in socket.getaddrinfo(host, None):
            check_address(info[4][0], allow_private=allow_private)
    except socket.gaierror as err:
        raise FetchError(f"{url}: cannot resolve {host} ({err})") from None
    opts = {"outtmpl": str(Path(workdir) / "video.%(ext)s"), "max_filesize": max_bytes,
            "socket_timeout": timeout, "noplaylist": True, "quiet": True, "no_warnings": True,
            "format": "best[height<=720]/best"}
    try:
        with yt_dlp.YoutubeDL(opts) as ydl:
            ydl.extract_info(url, download=True)
    except Exception as err:  # yt-dlp raises its own DownloadError family
        raise FetchError(f"yt-dlp could not fetch {url}: {err}") from None
    files = sorted(Path(workdir).glob("video.*"))
    if not files:
        raise FetchError(f"yt-dlp fetched nothing for {url} (over the {max_bytes}-byte limit?)")
    return files[0]


class MediaFetcher:
    """Turns each input (path or URL) into a local path; downloads live until `close()`.

    Args:
        allow_private: allow loopback/private addresses (tests, intranets).
        use_ytdlp: fetch URLs through yt-dlp (video sites) instead of a plain download.
    """

    def __init__(self, *, max_bytes: int = DEFAULT_MAX_BYTES, timeout: float = DEFAULT_TIMEOUT_S,
                 allow_private: bool = False, use_ytdlp: bool = False) -> None:
        self.max_bytes, self.timeout = max_bytes, timeout
        self.allow_private, self.use_ytdlp = allow_private, use_ytdlp
        self._dirs: list[str] = []

    def local(self, src: str | Path) -> str:
        """`src` itself for local files, else the downloaded copy's path."""
        if not is_url(src):
            return str(src)
        workdir = tempfile.mkdtemp(prefix="nanovl-fetch-")
        self._dirs.append(workdir)
        fetch = download_with_ytdlp if self.use_ytdlp else download
        return str(fetch(str(src), workdir, max_bytes=self.max_bytes, timeout=self.timeout,
                         allow_private=self.allow_private))

    def close(self) -> None:
        for d in self._dirs:
            shutil.rmtree(d, ignore_errors=True)
        self._dirs.clear()

    def __enter__(self) -> "MediaFetcher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
