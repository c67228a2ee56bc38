"""URL fetching: size and time limits, private-address refusal, web pages, yt-dlp message.

A local http.server in a thread serves the files; every test that reaches it passes
allow_private=True, the refusal tests show that 127.0.0.1 is refused without it.
"""
from __future__ import annotations

import http.server
import sys
import threading
import time
from pathlib import Path

import pytest

from nanovl.apps.fetch import FetchError, MediaFetcher, check_address, download, download_with_ytdlp

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass

    def do_GET(self):
        if self.path == "/clip.mp4":
            self._send(PAYLOAD, "video/mp4")
        elif self.path == "/nolength.bin":
            # no Content-Length: only the streaming check can stop it
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            for _ in range(64):
                self.wfile.write(PAYLOAD)
            self.close_connection = True
        elif self.path == "/page":
            self._send(b"<html><body>player</body></html>", "text/html; charset=utf-8")
        elif self.path == "/slow":
            time.sleep(1.5)
            self._send(b"late", "application/octet-stream")
        elif self.path == "/moved":
            self.send_response(302)
            self.send_header("Location", "/clip.mp4")
            self.end_headers()
        else:
            self.send_error(404)

    def _send(self, body: bytes, ctype: str):
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_download_streams_file(server, tmp_path):
    path = download(f"{server}/clip.mp4", tmp_path, allow_private=True)
    assert path.read_bytes() == PAYLOAD and path.name == "clip.mp4"


def test_redirect_is_followed(server, tmp_path):
    assert download(f"{server}/moved", tmp_path, allow_private=True).read_bytes() == PAYLOAD


def test_loopback_refused_without_flag(server, tmp_path):
    with pytest.raises(FetchError, match="non-public address 127.0.0.1"):
        download(f"{server}/clip.mp4", tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("host,ok", [("10.1.2.3", False), ("192.168.0.7", False), ("169.254.169.254", False),
                                     ("::1", False), ("::ffff:127.0.0.1", False), ("224.0.0.1", False),
                                     ("8.8.8.8", True), ("2001:4860:4860::8888", True)])
def test_check_address(host, ok):
    if ok:
        check_address(host)
    else:
        with pytest.raises(FetchError):
            check_address(host)
    check_address(host, allow_private=True)


def test_size_limit_from_header(server, tmp_path):
    with pytest.raises(FetchError, match="more than the limit"):
        download(f"{server}/clip.mp4", tmp_path, allow_private=True, max_bytes=1000)
    assert not list(tmp_path.iterdir())


def test_size_limit_while_streaming(server, tmp_path):
    with pytest.raises(FetchError, match="download aborted"):
        download(f"{server}/nolength.bin", tmp_path, allow_private=True, max_bytes=100_000)
    assert not list(tmp_path.iterdir())


def test_timeout(server, tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(FetchError, match="timed out"):
        download(f"{server}/slow", tmp_path, allow_private=True, timeout=0.3)
    assert time.perf_counter() - t0 < 1.4


def test_web_page_points_to_ytdlp(server, tmp_path):
    with pytest.raises(FetchError, match="web page.*yt-dlp"):
        download(f"{server}/page", tmp_path, allow_private=True)


def test_http_error_and_bad_scheme(server, tmp_path):
    with pytest.raises(FetchError, match="HTTP 404"):
        download(f"{server}/missing", tmp_path, allow_private=True)
    with pytest.raises(FetchError, match="only http"):
        download("file:///etc/passwd", tmp_path)


def test_ytdlp_missing_message(tmp_path, monkeypatch):
    # a None entry makes `import yt_dlp` fail, as on a machine without the optional extra
    monkeypatch.setitem(sys.modules, "yt_dlp", None)
    with pytest.raises(FetchError, match="yt-dlp is not installed.*pip install"):
        download_with_ytdlp("https://example.com/watch?v=1", tmp_path)


def test_fetcher_passes_paths_and_cleans_up(server):
    with MediaFetcher(allow_private=True) as fetcher:
        assert fetcher.local("/some/local.mp4") == "/some/local.mp4"
        local = Path(fetcher.local(f"{server}/clip.mp4"))
        assert local.read_bytes() == PAYLOAD
    assert not local.exists()
