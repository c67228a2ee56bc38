"""OpenAI-shaped error responses and the exception handlers that produce them.

Every failure leaves the server as `{"error": {"message", "type", "param", "code"}}` with a 4xx
status for anything the client caused. Unexpected exceptions are logged and answered with a
500 of the same shape; the server keeps serving.
"""
from __future__ import annotations

import logging
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nanovl.errors import NanovlError, QueueFullError, RequestCancelled
# error_body is the routes' too (SSE error events); the body shapes live with the request side
from nanovl.openai_api.errors import RequestError, as_request_error, error_body, validation_problem  # noqa: F401

logger = logging.getLogger("nanovl.server")

# the routes raise the same error the shared request translation raises (nanovl/openai_api): one class,
# so its refusals need no conversion here
APIError = RequestError


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)


def to_api_error(exc: BaseException, *, queue_full_status: int = 429, prompt_param: str = "messages") -> APIError:
    """Map a library exception to the APIError a client should see: the shared mapping
    (`as_request_error`), plus the server's own queue and cancellation statuses.

    prompt_param: the request field holding the prompt ("messages" for chat, "prompt" for completions).
    """
    if isinstance(exc, QueueFullError):
        return APIError(queue_full_status, str(exc) or "the request queue is full; retry later",
                        code="queue_full")
    if isinstance(exc, RequestCancelled):
        return APIError(499, str(exc) or "request cancelled", code="cancelled")
    err = as_request_error(exc, prompt_param=prompt_param)
    if err.status < 500 or isinstance(exc, RequestError):
        return err
    logger.exception("unexpected error while serving a request", exc_info=exc)
    # the details stay in the log: an exception's text may hold paths or data
    return APIError(500, f"internal error ({type(exc).__name__}); the server logged the details",
                    code="internal_error")


def install_error_handlers(app: FastAPI, *, queue_full_status: int = 429) -> None:
    """Route FastAPI's own errors (422 validation, 404/405 routing) and ours into the OpenAI shape."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI answers 422; OpenAI clients expect 400 for a malformed body
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return error_response(400, "the request body is not valid JSON", code="invalid_request")
        message, param = validation_problem(exc.errors())
        return error_response(400, message, param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code)

    async def _library(request: Request, exc: Exception) -> JSONResponse:
        prompt_param = "prompt" if request.url.path == "/v1/completions" else "messages"
        err = to_api_error(exc, queue_full_status=queue_full_status, prompt_param=prompt_param)
        return error_response(err.status, err.message, param=err.param, code=err.code)

    # specific classes are answered by Starlette's ExceptionMiddleware; the bare Exception
    # handler runs in ServerErrorMiddleware, which answers and then re-raises for the logs
    for cls in (NanovlError, ValueError, Exception):
        app.add_exception_handler(cls, _library)
