"""The browser page: GET / serves nanovl/web/static/index.html, /web/* its CSS and scripts.

The page only talks to this server's own /v1 API; it needs no key to load (it asks for one).
"""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

logger = logging.getLogger("nanovl.server")
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"
# the page runs only its own scripts and reaches only this origin; media previews are blob: URLs
PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
            "media-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
PAGE_HEADERS = {"Content-Security-Policy": PAGE_CSP, "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


class _StaticAssets(StaticFiles):
    """StaticFiles that makes the browser revalidate (ETag), so an upgraded server never runs stale scripts."""

    def file_response(self, *args, **kwargs):
        resp = super().file_response(*args, **kwargs)
        resp.headers["Cache-Control"] = "no-cache"
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp


def register_web_routes(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Mount the page at / and its assets at /web/ on `app`; without its files, only the API is served."""
    index = static_dir / "index.html"
    if not index.is_file():
        logger.warning("no web page: %s is missing (an install without package data?); serving the API only", index)
        return
    app.mount("/web", _StaticAssets(directory=static_dir), name="web")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(index, media_type="text/html; charset=utf-8", headers=PAGE_HEADERS)
