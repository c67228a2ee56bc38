"""RequestError: a client-caused problem with an OpenAI request body, with the HTTP status it maps to."""
from __future__ import annotations

from nanovl.errors import ContextLengthError, InvalidRequestError
from nanovl.inputs.errors import MediaError


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
