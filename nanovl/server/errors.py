"""OpenAI-shaped error responses and the exception handlers that produce them.

Every failure leaves the server as `{"error": {"message", "type", "param", "code"}}` with a 4xx
status for anything the client caused. Unexpected exceptions are logged and answered with a
500 of the same shape; the server keeps serving.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from nanovl.errors import ContextLengthError, InvalidRequestError, NanovlError, QueueFullError, RequestCancelled
from nanovl.inputs.errors import MediaError

logger = logging.getLogger("nanovl.server")

# status -> OpenAI error type
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    499: "request_cancelled",
    500: "internal_error",
    503: "service_unavailable",
}


class APIError(Exception):
    """An error the routes raise on purpose; becomes an OpenAI-shaped response with `status`."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response (also sent as the last SSE event of a failed stream)."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def error_response(status: int, message: str, *, param: str | None = None, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message, param=param, code=code), status_code=status, headers=headers)


def to_api_error(exc: BaseException, *, queue_full_status: int = 429) -> APIError:
    """Map a library exception to the APIError a client should see."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, ContextLengthError):
        return APIError(400, str(exc), param="messages", code="context_length_exceeded")
    if isinstance(exc, MediaError):
        return APIError(400, str(exc), param="messages", code="invalid_media")
    if isinstance(exc, QueueFullError):
        return APIError(queue_full_status, str(exc) or "the request queue is full; retry later",
                        code="queue_full")
    if isinstance(exc, RequestCancelled):
        return APIError(499, str(exc) or "request cancelled", code="cancelled")
    # InvalidRequestError and SamplingParams' validation both subclass ValueError
    if isinstance(exc, (InvalidRequestError, ValueError)):
        return APIError(400, str(exc), code="invalid_request")
    logger.exception("unexpected error while serving a request", exc_info=exc)
    return APIError(500, f"internal error ({type(exc).__name__}); the server logged the details",
                    code="internal_error")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request body", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"{param}: {msg}" if param else msg) + more, param


def install_error_handlers(app: FastAPI, *, queue_full_status: int = 429) -> None:
    """Route FastAPI's own errors (422 validation, 404/405 routing) and ours into the OpenAI shape."""

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI answers 422; OpenAI clients expect 400 for a malformed body
        message, param = _validation_message(exc)
        return error_response(400, message, param=param, code="invalid_request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(APIError)
    async def _api(_: Request, exc: APIError) -> JSONResponse:
        return error_response(exc.status, exc.message, param=exc.param, code=exc.code)

    async def _library(_: Request, exc: Exception) -> JSONResponse:
        err = to_api_error(exc, queue_full_status=queue_full_status)
        return error_response(err.status, err.message, param=err.param, code=err.code)

    # specific classes are answered by Starlette's ExceptionMiddleware; the bare Exception
    # handler runs in ServerErrorMiddleware, which answers and then re-raises for the logs
    for cls in (NanovlError, ValueError, Exception):
        app.add_exception_handler(cls, _library)
