"""RequestError: a client-caused problem with an OpenAI request body, with the HTTP status it maps to;
the OpenAI error body, and the message of a body that fails validation (server and batch share them)."""
from __future__ import annotations

from typing import Any

from nanovl.errors import ContextLengthError, InvalidRequestError
from nanovl.inputs.errors import MediaError

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


class RequestError(InvalidRequestError):
    """A request the caller got wrong; `status`, `param` and `code` are what an OpenAI error carries."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code


def as_request_error(exc: BaseException, *, prompt_param: str = "messages") -> RequestError:
    """The RequestError a client should see for a library exception (the server's mapping, minus HTTP);
    anything unexpected is a 500 that names the exception type only."""
    if isinstance(exc, RequestError):
        return exc
    if isinstance(exc, ContextLengthError):
        return RequestError(400, str(exc), param=prompt_param, code="context_length_exceeded")
    if isinstance(exc, MediaError):
        return RequestError(400, str(exc), param="messages", code="invalid_media")
    # InvalidRequestError and SamplingParams' validation both subclass ValueError
    if isinstance(exc, ValueError):
        return RequestError(400, str(exc), code="invalid_request")
    return RequestError(500, f"internal error ({type(exc).__name__}: {exc})", code="internal_error")


def error_body(status: int, message: str, *, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    """The JSON body of an error response (also sent as the last SSE event of a failed stream)."""
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "invalid_request_error"),
                      "param": param, "code": code}}


def validation_problem(errors: list[dict[str, Any]]) -> tuple[str, str | None]:
    """(message, param) for pydantic's errors of a request body: the first problem the input was
    meant for, as "field.path: message" (the server's 400 and a batch line's record say the same)."""
    errors = _taken_branches(errors)
    if not errors:
        return "invalid request body", None
    first = errors[0]
    param = _param(first.get("loc", ()))
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
