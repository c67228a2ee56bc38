"""ServerSettings (the serve command's HTTP flags) and ServerState (what the routes share)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nanovl.server.media import MediaPolicy
from nanovl.server.metrics import ServerMetrics


@dataclass(frozen=True)
class ServerSettings:
    """HTTP-side options; engine options go to EngineConfig.

    served_model_names: names /v1/models lists and requests may use (the first is reported back);
        empty means the model path's folder name.
    api_key: when set, /v1/* requires `Authorization: Bearer <api_key>`.
    max_body_bytes: larger request bodies get 413.
    queue_full_status: 429 (retry later) or 503 when the engine's waiting queue is full.
    web_page: serve the chat page at / (`--no-web` for an API-only server).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    served_model_names: tuple[str, ...] = ()
    api_key: str | None = None
    max_body_bytes: int = 100 * 1024 * 1024
    queue_full_status: int = 429
    media: MediaPolicy = field(default_factory=MediaPolicy)
    web_page: bool = True

    def __post_init__(self) -> None:
        if self.queue_full_status not in (429, 503):
            raise ValueError(f"queue_full_status must be 429 or 503, got {self.queue_full_status}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")


@dataclass
class ServerState:
    """Everything a route needs: the async engine, the names it answers to, limits and metrics."""

    engine: object  # nanovl.engine.async_engine.AsyncEngine (typed loosely: tests pass fakes)
    settings: ServerSettings
    model_names: tuple[str, ...]
    max_model_len: int
    tokenizer: object
    metrics: ServerMetrics
    created: int = 0
    # texts longer than this cannot fit max_model_len (translate.max_prompt_chars); None: no check
    max_prompt_chars: int | None = None
    # the engine's waiting-queue size (--max-waiting); None: unknown
    max_waiting: int | None = None

    @property
    def model_name(self) -> str:
        return self.model_names[0]

    def check_model(self, name: str | None) -> str:
        """The name to report; raises a 404 APIError for a model this server does not serve."""
        from nanovl.server.errors import APIError

        if name is None or name == "" or name in self.model_names:
            return name or self.model_name
        raise APIError(404, f"the model {name!r} does not exist; this server serves {list(self.model_names)}",
                       param="model", code="model_not_found")

    def check_fits_queue(self, num_requests: int, n: int) -> None:
        """A 400 for more engine requests than the waiting queue ever holds: a 429 would never clear."""
        from nanovl.server.errors import APIError

        if self.max_waiting is not None and num_requests > self.max_waiting:
            raise APIError(400, f"n={n} asks for {num_requests} sequences at once, more than the waiting queue "
                                f"ever holds (--max-waiting {self.max_waiting}); lower n", param="n",
                           code="invalid_request")


def default_model_name(model_path: str | Path | None) -> str:
    if model_path is None:
        return "nanovl-tiny"
    return Path(str(model_path).rstrip("/")).name or str(model_path)
