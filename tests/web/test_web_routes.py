"""The page's routes without a browser: / and every asset it names are served, with no API key needed,
while /v1 stays locked.

Run: pytest tests/web/test_web_routes.py
"""
from __future__ import annotations

import re

import httpx
import pytest

from nanovl.server.web_routes import STATIC_DIR


@pytest.fixture(scope="module")
def locked(start_server):
    from nanovl.server.state import ServerSettings

    return start_server(ServerSettings(api_key="sk-routes"))


def test_page_and_every_asset_it_names_load_without_a_key(locked):
    page = httpx.get(locked.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp and "unsafe-inline" not in csp
    assets = set(re.findall(r'(?:src|href)="(/web/[^"]+)"', page.text))
    # the scripts' own imports, followed from the entry module
    for js in STATIC_DIR.glob("*.js"):
        assets |= {f"/web/{name}" for name in re.findall(r'from "\./([\w.-]+)"', js.read_text())}
    assert {"/web/main.js", "/web/style.css", "/web/chat.js", "/web/render.js"} <= assets
    for path in sorted(assets):
        resp = httpx.get(locked.url + path)
        assert resp.status_code == 200, path
        assert resp.headers["cache-control"] == "no-cache"
    assert httpx.get(locked.url + "/web/missing.js").status_code == 404
    assert httpx.get(locked.url + "/v1/models").status_code == 401
    assert httpx.get(locked.url + "/v1/models", headers={"Authorization": "Bearer sk-routes"}).status_code == 200


def test_page_scripts_never_write_markup():
    # model text reaches the DOM through textContent only (the browser tests check the rendering too)
    for js in STATIC_DIR.glob("*.js"):
        src = js.read_text()
        for sink in (".innerHTML", ".outerHTML", "insertAdjacentHTML(", "document.write(", "eval(", "new Function("):
            assert sink not in src, f"{js.name} uses {sink}"


def test_no_web_serves_the_api_only(start_server):
    from nanovl.server.state import ServerSettings

    api_only = start_server(ServerSettings(web_page=False))
    assert httpx.get(api_only.url + "/").status_code == 404
    assert httpx.get(api_only.url + "/web/main.js").status_code == 404
    assert httpx.get(api_only.url + "/v1/models").status_code == 200
