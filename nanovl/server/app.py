"""FastAPI app factory: the OpenAI routes, the web page, /health, /metrics, auth, body limits, errors.

    engine = AsyncEngine(LLMEngine(EngineConfig(model="path")))
    app = build_app(engine, ServerSettings(api_key="sk-..."))
    serve(app, ServerSettings(...))          # or run_in_thread(app) in tests and notebooks

The engine thread starts with the app (lifespan) and stops with it.
"""
from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

from nanovl.server.errors import error_body, install_error_handlers
from nanovl.server.metrics import CONTENT_TYPE, ServerMetrics
from nanovl.server.openai_routes import register_routes
from nanovl.server.state import ServerSettings, ServerState, default_model_name
from nanovl.openai_api.translate import max_prompt_chars
from nanovl.server.web_routes import register_web_routes

logger = logging.getLogger("nanovl.server")
ROUTES = ("/v1/models", "/v1/chat/completions", "/v1/completions")
MODEL_ROUTE = "/v1/models/{model_id}"


def build_app(engine, settings: ServerSettings | None = None) -> FastAPI:
    """The ASGI app serving `engine` (an AsyncEngine) with `settings`."""
    settings = settings or ServerSettings()
    core = engine.engine
    names = settings.served_model_names or (default_model_name(core.config.model),)
    metrics = ServerMetrics(lambda: {"num_waiting": engine.queue_depth, "num_running": engine.num_running})
    state = ServerState(engine=engine, settings=settings, model_names=tuple(names),
                        max_model_len=core.max_model_len, tokenizer=core.tokenizer, metrics=metrics,
                        created=int(time.time()),
                        max_prompt_chars=max_prompt_chars(core.tokenizer, core.max_model_len),
                        max_waiting=core.scheduler.max_waiting)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI):
        engine.start()
        try:
            yield
        finally:
            engine.shutdown()

    app = FastAPI(title="nanovl", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.nanovl = state
    install_error_handlers(app, queue_full_status=settings.queue_full_status)
    register_routes(app, state)
    if settings.web_page:
        register_web_routes(app)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok" if engine.is_running else "starting", "model": state.model_name}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type=CONTENT_TYPE)

    return GuardMiddleware(app, settings, metrics)


class GuardMiddleware:
    """Outermost ASGI layer: auth, body-size limit, request counting, last-resort error shape.

    The body is read here (up to `max_body_bytes`) and replayed to the app, so an oversize
    upload is refused with 413 whether or not it declared a Content-Length.
    """

    def __init__(self, app: FastAPI, settings: ServerSettings, metrics: ServerMetrics) -> None:
        self.app = app
        self.settings = settings
        self.metrics = metrics
        self.state = app.state

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        status_box = [0]

        async def send_tracking(message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            if not self._authorized(scope):
                await _send_error(send_tracking, 401, "missing or invalid API key (Authorization: Bearer ...)",
                                  headers=[(b"www-authenticate", b"Bearer")])
                return
            body_receive = await self._buffer_body(scope, receive, send_tracking)
            if body_receive is not None:
                await self.app(_as_json(scope), body_receive, send_tracking)
        except Exception:  # noqa: BLE001 - keep serving; the client gets an error, the log the trace
            logger.exception("unhandled error on %s", path)
            if status_box[0] == 0:
                await _send_error(send_tracking, 500, "internal server error; the server logged the details")
        finally:
            if path.startswith("/v1/"):
                # unknown paths share one label so clients cannot grow the metric without bound
                label = path if path in ROUTES else MODEL_ROUTE if path.startswith("/v1/models/") else "other"
                self.metrics.record_request(label, status_box[0] or 499)

    def _authorized(self, scope) -> bool:
        key = self.settings.api_key
        # only the API is guarded: the page (/, /web/*), /health and /metrics load without a key
        if not key or not scope.get("path", "").startswith("/v1"):
            return True
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"authorization", b"").decode("latin-1")
        # the scheme is case-insensitive (RFC 9110): "bearer KEY" is as good as "Bearer KEY"
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode())

    async def _buffer_body(self, scope, receive, send):
        """A receive() that replays the buffered body, or None after answering 413."""
        limit = self.settings.max_body_bytes
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _send_error(send, 413, f"request body larger than --max-body-bytes {limit}", code="body_too_large")
            return None
        if scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            return receive
        chunks, total, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await _send_error(send, 413, f"request body larger than --max-body-bytes {limit}",
                                  code="body_too_large")
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        replay = [{"type": "http.request", "body": b"".join(chunks), "more_body": False}]

        async def body_receive():
            # after the body, pass through so the app still sees a client disconnect
            return replay.pop() if replay else await receive()

        return body_receive


def _as_json(scope):
    """The API's POST bodies are JSON whatever Content-Type says (`curl -d` sends a form type)."""
    if scope.get("method") != "POST" or not scope.get("path", "").startswith("/v1/"):
        return scope
    headers = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"content-type"]
    return {**scope, "headers": [*headers, (b"content-type", b"application/json")]}


async def _send_error(send, status: int, message: str, *, code: str | None = None,
                      headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(error_body(status, message, code=code)).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


# ---------------------------------------------------------------------- running
def serve(app, settings: ServerSettings, *, log_level: str = "info") -> None:
    """Run `app` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(app, host=settings.host, port=settings.port, log_level=log_level, timeout_graceful_shutdown=5)


class ServerThread:
    """uvicorn on a background thread (tests, notebooks); port 0 picks a free port.

        with ServerThread(app) as srv:
            client = openai.OpenAI(base_url=srv.url + "/v1", api_key="x")
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level,
                                                    timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, name="nanovl-server", daemon=True)
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)

    def __enter__(self) -> "ServerThread":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
