"""Server limits: 401 with --api-key, 413 for big bodies and media, 429/503 when the queue is full,
local media only below --allowed-media-root (no `..`, no escaping symlinks).

Run: pytest tests/server/test_server_limits.py
"""
from __future__ import annotations

import threading

import httpx
import openai
import pytest
from serverkit import MODEL_NAME, assert_openai_error, data_uri, image_part, mp4_bytes, png_bytes, user


KEY = "sk-test-key"
OK_BODY = {"model": MODEL_NAME, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
MAX_BODY, MAX_MEDIA = 300_000, 20_000


@pytest.fixture(scope="module")
def media_root(tmp_path_factory):
    """root/ok.png, root/sub/ok.png, root/big.png (over the media limit), root/link.png -> ../secret.png."""
    base = tmp_path_factory.mktemp("media")
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "ok.png").write_bytes(png_bytes())
    (root / "sub" / "ok.png").write_bytes(png_bytes(color=(0, 0, 255)))
    (root / "big.png").write_bytes(png_bytes() + b"\0" * MAX_MEDIA)
    (base / "secret.png").write_bytes(png_bytes(color=(0, 255, 0)))
    (root / "link.png").symlink_to(base / "secret.png")
    (root / "inner_link.png").symlink_to(root / "ok.png")
    (root / "dir_link").symlink_to(base)
    mp4_bytes(root / "clip.mp4", num_frames=4)
    return root


@pytest.fixture(scope="module")
def strict(start_server, media_root):
    from nanovl.server.media import MediaPolicy
    from nanovl.server.state import ServerSettings

    media = MediaPolicy(allowed_root=media_root, max_media_count=2, max_media_bytes=MAX_MEDIA)
    settings = ServerSettings(api_key=KEY, max_body_bytes=MAX_BODY, media=media)
    srv = start_server(settings, max_num_seqs=2)
    with httpx.Client(base_url=srv.url, timeout=60, headers={"authorization": f"Bearer {KEY}"}) as http:
        yield srv, http


def assert_still_serving(http):
    resp = http.post("/v1/chat/completions", json=OK_BODY)
    assert resp.status_code == 200, resp.text


# ------------------------------------------------------------------ auth
def test_api_key(strict):
    srv, http = strict
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": KEY}):
        resp = httpx.post(srv.url + "/v1/chat/completions", json=OK_BODY, headers=headers)
        assert assert_openai_error(resp, 401)["type"] == "authentication_error"
    assert_openai_error(httpx.get(srv.url + "/v1/models"), 401)
    # health and metrics stay open for probes and scrapers
    assert httpx.get(srv.url + "/health").status_code == 200
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0).models.list()
    good = openai.OpenAI(base_url=srv.url + "/v1", api_key=KEY, max_retries=0)
    assert good.chat.completions.create(model=MODEL_NAME, messages=OK_BODY["messages"], max_tokens=2).choices


def test_api_key_scheme_is_case_insensitive(strict):
    srv, _ = strict
    for scheme in ("bearer", "BEARER", "BeArEr"):
        resp = httpx.post(srv.url + "/v1/chat/completions", json=OK_BODY, headers={"authorization": f"{scheme} {KEY}"})
        assert resp.status_code == 200, resp.text
    resp = httpx.post(srv.url + "/v1/chat/completions", json=OK_BODY, headers={"authorization": f"Basic {KEY}"})
    assert_openai_error(resp, 401)


# ------------------------------------------------------------------ sizes
def test_body_too_large(strict):
    srv, http = strict
    big = {**OK_BODY, "messages": [{"role": "user", "content": "x" * MAX_BODY}]}
    assert assert_openai_error(http.post("/v1/chat/completions", json=big), 413)["code"] == "body_too_large"

    def chunks():
        # no Content-Length: the limit must hold while reading
        for _ in range(40):
            yield b" " * 10_000
    resp = http.post("/v1/chat/completions", content=chunks(), headers={"content-type": "application/json"})
    assert_openai_error(resp, 413)
    assert_still_serving(http)


def test_media_too_large(strict):
    _, http = strict
    big_uri = data_uri(png_bytes() + b"\0" * MAX_MEDIA)
    for url in (big_uri, "big.png"):
        resp = http.post("/v1/chat/completions", json={**OK_BODY, "messages": user(image_part(url))})
        assert assert_openai_error(resp, 413)["code"] == "media_too_large"
    assert_still_serving(http)


def test_media_limit_counts_decoded_bytes(strict):
    # a PNG of exactly --max-media-bytes (zeros after IEND are ignored by decoders) passes as a data URI
    _, http = strict
    png = png_bytes()
    at_limit = png + b"\0" * (MAX_MEDIA - len(png))
    for data, status in ((at_limit, 200), (at_limit + b"\0", 413)):
        resp = http.post("/v1/chat/completions", json={**OK_BODY, "messages": user(image_part(data_uri(data)))})
        assert resp.status_code == status, resp.text


def test_too_many_media(strict):
    _, http = strict
    resp = http.post("/v1/chat/completions", json={**OK_BODY, "messages": user(*[image_part("ok.png")] * 3)})
    assert assert_openai_error(resp, 400)["code"] == "too_many_media"


# ------------------------------------------------------------------ media root
@pytest.mark.parametrize("url", ["ok.png", "sub/ok.png", "inner_link.png", "file:///{root}/ok.png"])
def test_files_under_root_are_read(strict, media_root, url):
    _, http = strict
    resp = http.post("/v1/chat/completions",
                     json={**OK_BODY, "messages": user(image_part(url.format(root=media_root)))})
    assert resp.status_code == 200, resp.text
    assert resp.json()["usage"]["prompt_tokens"] > 30


@pytest.mark.parametrize("url", [
    "../secret.png", "sub/../../secret.png", "sub/../ok.png", "file:///{root}/../secret.png",
    "file:///{root}/%2e%2e/secret.png", "{base}/secret.png", "/etc/passwd", "link.png", "dir_link/secret.png",
    "file://otherhost/{root}/ok.png", "ok.png\x00.txt"])
def test_paths_leaving_root_are_refused(strict, media_root, url):
    _, http = strict
    url = url.format(root=media_root, base=media_root.parent)
    resp = http.post("/v1/chat/completions", json={**OK_BODY, "messages": user(image_part(url))})
    err = assert_openai_error(resp, 400)
    assert "secret" not in err["message"] and "passwd" not in err["message"]
    assert_still_serving(http)


def video_part(url: str) -> dict:
    return {"type": "video_url", "video_url": {"url": url}}


def test_video_urls_follow_the_same_rules(strict, media_root):
    _, http = strict
    ok = http.post("/v1/chat/completions", json={**OK_BODY, "messages": user(video_part("clip.mp4"))})
    assert ok.status_code == 200, ok.text
    for url in ("../secret.png", "link.png", f"file://{media_root}/../secret.png"):
        resp = http.post("/v1/chat/completions", json={**OK_BODY, "messages": user(video_part(url))})
        assert assert_openai_error(resp, 400)["code"] == "forbidden_path"


def test_missing_and_non_regular_files(strict):
    _, http = strict
    for url in ("nope.png", "sub"):
        resp = http.post("/v1/chat/completions", json={**OK_BODY, "messages": user(image_part(url))})
        assert_openai_error(resp, 400)


# ------------------------------------------------------------------ queue
@pytest.mark.parametrize("status", [429, 503])
def test_queue_full(start_server, status):
    """With max_waiting=1 and the engine held, the second request is refused; the first then completes."""
    from nanovl.server.state import ServerSettings

    srv = start_server(ServerSettings(queue_full_status=status), max_num_seqs=1, max_waiting=1)
    engine, real_step, release = srv.engine, srv.engine.step, threading.Event()

    def held_step():
        # while held, nothing is scheduled: added requests stay in the waiting queue
        if not release.wait(0.005):
            return []
        return real_step()

    engine.step = held_step
    first: dict = {}
    worker = threading.Thread(target=lambda: first.update(r=httpx.post(srv.url + "/v1/chat/completions",
                                                                       json=OK_BODY, timeout=60)))
    try:
        worker.start()
        while engine.scheduler.num_waiting < 1:
            assert worker.is_alive(), first
            release.wait(0.01)
        for stream in (False, True):
            resp = httpx.post(srv.url + "/v1/chat/completions", json={**OK_BODY, "stream": stream})
            err = assert_openai_error(resp, status)
            assert err["code"] == "queue_full"
    finally:
        release.set()
        worker.join(60)
        del engine.step
    assert first["r"].status_code == 200, first["r"].text
    assert httpx.post(srv.url + "/v1/chat/completions", json=OK_BODY).status_code == 200


def test_n_larger_than_the_queue_is_400(start_server):
    """n=4 choices can never all wait in a queue of 2: a 400 that says so, not a 429 forever."""
    srv = start_server(max_num_seqs=1, max_waiting=2)
    for path, body in (("/v1/chat/completions", OK_BODY), ("/v1/completions", {**OK_BODY, "prompt": "hi"})):
        err = assert_openai_error(httpx.post(srv.url + path, json={**body, "n": 4}), 400)
        assert err["param"] == "n" and "n=4" in err["message"] and "--max-waiting 2" in err["message"]
    resp = httpx.post(srv.url + "/v1/completions", json={**OK_BODY, "prompt": ["a", "b"], "n": 2})
    assert "4 sequences" in assert_openai_error(resp, 400)["message"]
    resp = httpx.post(srv.url + "/v1/chat/completions", json={**OK_BODY, "n": 2})
    assert resp.status_code == 200 and len(resp.json()["choices"]) == 2


def test_engine_failure_mid_stream(start_server):
    """A step that raises after the headers went out ends the stream with an in-band error; the
    engine recovers and the next request is served."""
    srv = start_server(max_num_seqs=2)
    engine, real_step, calls = srv.engine, srv.engine.step, []

    def failing_step():
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("simulated device failure")
        return real_step()

    engine.step = failing_step
    client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x", max_retries=0)
    try:
        with pytest.raises(openai.APIError, match="internal error"):
            for _ in client.chat.completions.create(model=MODEL_NAME, messages=OK_BODY["messages"], stream=True,
                                                    max_tokens=20, extra_body={"ignore_eos": True}):
                pass
    finally:
        del engine.step
    assert httpx.post(srv.url + "/v1/chat/completions", json=OK_BODY).status_code == 200
