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

from nanovl.errors import NanovlError, QueueFullError, RequestCancelled
from nanovl.openai_api.errors import RequestError, as_request_error

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


# the routes raise the same error the shared request translation raises (nanovl/openai_api): one class,
# so its refusals need no conversion here
APIError = RequestError


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response (also sent as the last SSE event of a failed stream)."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


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


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = _taken_branches(exc.errors())
    if not errors:
        return "invalid request body", None
    first = errors[0]
    param = _param(first.get("loc", ()))
    if first.get("type") == "json_invalid":
        return "the request body is not valid JSON", None
    msg = first.get("msg", "invalid value")
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    return (f"{param}: {msg}" if param else msg) + more, param


def _is_branch(item: Any) -> bool:
    # pydantic names union members in `loc` by their type: "str", "list[tagged-union[...]]"
    return isinstance(item, str) and "[" in item


def _taken_branches(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop the errors of union members the input was not meant for.

    A union reports one error per member; for content given as a list, the "str" member's
    "should be a valid string" hides the real problem, which the list member found deeper in.
    """
    locs = [tuple(e.get("loc", ())) for e in errors]

    def beaten(loc: tuple) -> bool:
        k = len(loc) - 1
        return any(len(other) > len(loc) and other[:k] == loc[:k] and _is_branch(other[k]) for other in locs)

    return [e for e, loc in zip(errors, locs) if not beaten(loc)]


def _param(loc) -> str | None:
    """The dotted field path, without "body" and the union member names pydantic puts in `loc`."""
    parts, tag_at = [], -1
    for k, item in enumerate(loc):
        if k == 0 and item == "body":
            continue
        if _is_branch(item):
            # in a list of a tagged union, the item after the list index is the member's tag
            if item.startswith("list[tagged-union["):
                tag_at = k + 2
            continue
        if k != tag_at:
            parts.append(str(item))
    return ".".join(parts) or None


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

    async def _library(request: Request, exc: Exception) -> JSONResponse:
        prompt_param = "prompt" if request.url.path == "/v1/completions" else "messages"
        err = to_api_error(exc, queue_full_status=queue_full_status, prompt_param=prompt_param)
        return error_response(err.status, err.message, param=err.param, code=err.code)

    # specific classes are answered by Starlette's ExceptionMiddleware; the bare Exception
    # handler runs in ServerErrorMiddleware, which answers and then re-raises for the logs
    for cls in (NanovlError, ValueError, Exception):
        app.add_exception_handler(cls, _library)
