"""Remote media: off by default; with --allow-remote-media, loopback / private / link-local targets
(literal, decimal, hex, IPv6 forms, or names resolving there) are refused BEFORE any connection.

No test sends traffic beyond 127.0.0.1: name resolution is faked (numeric forms go to the real
resolver with AI_NUMERICHOST, which never touches the network) and every socket connect is
recorded; connects to anything but 127.0.0.1 raise instead of leaving the machine.

Run: pytest tests/server/test_server_remote_media.py
"""
from __future__ import annotations

import asyncio
import http.server
import socket
import threading

import httpx
import pytest
from serverkit import MODEL_NAME, assert_openai_error, image_part, png_bytes, user

from nanovl.server import media
from nanovl.server.errors import APIError
from nanovl.server.media import MediaPolicy, load_source

FAKE_DNS = {"internal.test": ["10.1.2.3"], "localhost": ["127.0.0.1", "::1"], "metadata.test": ["169.254.169.254"],
            "mixed.test": ["93.184.216.34", "192.168.0.7"], "v6local.test": ["fd00::7"],
            "media.test": ["127.0.0.1"]}
_real_getaddrinfo, _real_connect = socket.getaddrinfo, socket.socket.connect


@pytest.fixture
def no_egress(monkeypatch):
    """Fake DNS plus a connect() recorder; returns the list of (host, port) connect attempts."""
    attempts = []

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        host = host.decode() if isinstance(host, bytes) else host
        try:
            return _real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            pass
        if host not in FAKE_DNS:
            raise socket.gaierror(socket.EAI_NONAME, "unknown test host")
        return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port))
                for a in FAKE_DNS[host]]

    def connect(sock, address):
        attempts.append(address[:2])
        if address[0] != "127.0.0.1":
            raise ConnectionRefusedError(f"test refused a connection to {address}")
        return _real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


REMOTE = MediaPolicy(allow_remote=True)
REFUSED = [
    "http://127.0.0.1/a.png", "http://127.1/a.png", "http://2130706433/a.png", "http://0x7f000001/a.png",
    "http://0177.0.0.1/a.png", "http://0.0.0.0/a.png", "http://localhost/a.png", "http://LOCALHOST:8080/a.png",
    "http://10.0.0.5/a.png", "http://172.16.3.4/a.png", "http://192.168.1.1/a.png", "http://100.64.0.1/a.png",
    "http://169.254.169.254/latest/meta-data", "http://[::1]/a.png", "http://[fe80::1]/a.png",
    "http://[fd00::1]/a.png", "http://[::ffff:127.0.0.1]/a.png", "http://[::ffff:a00:1]/a.png",
    "http://[64:ff9b::7f00:1]/a.png", "https://internal.test/a.png", "http://metadata.test/",
    "http://mixed.test/a.png", "http://v6local.test/a.png", "http://224.0.0.1/a.png",
]


@pytest.mark.parametrize("url", REFUSED)
def test_private_targets_refused_before_connecting(no_egress, url):
    with pytest.raises(APIError) as info:
        asyncio.run(load_source(url, REMOTE, name="image_url #1"))
    assert info.value.status == 400 and info.value.code == "forbidden_address"
    assert no_egress == []


@pytest.mark.parametrize("url", ["http://user:pw@internal.test/a.png", "http://nowhere.invalid/a.png",
                                 "http://internal.test:99999/a.png", "gopher://internal.test/"])
def test_other_bad_urls_refused(no_egress, url):
    with pytest.raises(APIError) as info:
        asyncio.run(load_source(url, REMOTE, name="image_url #1"))
    assert info.value.status == 400
    assert no_egress == []


def test_remote_off_by_default(no_egress):
    with pytest.raises(APIError) as info:
        asyncio.run(load_source("http://media.test/a.png", MediaPolicy(), name="image_url #1"))
    assert info.value.code == "remote_media_disabled" and no_egress == []


class _Media(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 - http.server's name
        if self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://internal.test/a.png")
            self.end_headers()
            return
        body = png_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Host-Seen", self.headers.get("Host", ""))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def loopback_media(monkeypatch, no_egress):
    """A tiny HTTP server on 127.0.0.1 that the policy is told to treat as public (only 127.0.0.1)."""
    real = media.is_public_address
    monkeypatch.setattr(media, "is_public_address", lambda a: a == "127.0.0.1" or real(a))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Media)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def test_fetch_goes_to_the_checked_address(loopback_media, no_egress):
    # the name is resolved once, checked, and the connection goes to that very address
    data = asyncio.run(load_source(f"http://media.test:{loopback_media}/a.png", REMOTE, name="image_url #1"))
    assert data == png_bytes()
    assert no_egress == [("127.0.0.1", loopback_media)]


def test_redirect_to_private_refused(loopback_media, no_egress):
    with pytest.raises(APIError) as info:
        asyncio.run(load_source(f"http://media.test:{loopback_media}/redirect", REMOTE, name="image_url #1"))
    assert info.value.code == "forbidden_address"
    # one hop to the allowed server, none to the private target
    assert no_egress == [("127.0.0.1", loopback_media)]


def test_remote_media_through_the_server(start_server, loopback_media, no_egress):
    from nanovl.server.state import ServerSettings

    srv = start_server(ServerSettings(media=REMOTE))
    ok = user(image_part(f"http://media.test:{loopback_media}/a.png"))
    body = {"model": MODEL_NAME, "max_tokens": 2}
    resp = httpx.post(srv.url + "/v1/chat/completions", json={**body, "messages": ok}, timeout=60)
    assert resp.status_code == 200, resp.text
    # (this fixture lets 127.0.0.1 through, so the decimal form here names 10.0.0.1)
    for url in ("http://internal.test/a.png", "http://[::1]:1/a.png", "http://167772161/"):
        resp = httpx.post(srv.url + "/v1/chat/completions", json={**body, "messages": user(image_part(url))})
        assert assert_openai_error(resp, 400)["code"] == "forbidden_address", resp.text
    # only the test's own loopback traffic: the client to the server, the server to the media host
    assert {port for _, port in no_egress} <= {srv.port, loopback_media}
    assert {host for host, _ in no_egress} == {"127.0.0.1"}
