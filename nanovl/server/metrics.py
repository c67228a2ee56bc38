"""Server metrics in the Prometheus text exposition format (version 0.0.4), written by hand.

Counters: requests by endpoint and status, prompt and generated tokens. Gauges (read at scrape
time from the engine): waiting and running requests. Histograms: time to first token and
end-to-end latency.
"""
from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Callable, Mapping

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Histogram:
    """Cumulative-bucket histogram with a sum and a count."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.sum += value
        self.count += 1
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1

    def lines(self, name: str) -> list[str]:
        out = [f'{name}_bucket{{le="{_fmt(b)}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{le="+Inf"}} {self.count}')
        return out + [f"{name}_sum {_fmt(self.sum)}", f"{name}_count {self.count}"]


class ServerMetrics:
    """What /metrics reports; the routes call `record_*`, the scrape calls `render()`.

    Args:
        engine_stats: returns the engine's gauges at scrape time ({"num_waiting", "num_running"}).
    """

    def __init__(self, engine_stats: Callable[[], Mapping[str, int]] | None = None) -> None:
        self._lock = threading.Lock()
        self._engine_stats = engine_stats
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.ttft = Histogram()
        self.e2e = Histogram()

    def record_request(self, endpoint: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, status)] += 1

    def record_tokens(self, num_prompt: int, num_generated: int) -> None:
        with self._lock:
            self.prompt_tokens += num_prompt
            self.generation_tokens += num_generated

    def record_latency(self, ttft_s: float | None, e2e_s: float | None) -> None:
        with self._lock:
            if ttft_s is not None:
                self.ttft.observe(ttft_s)
            if e2e_s is not None:
                self.e2e.observe(e2e_s)

    def render(self) -> str:
        """The exposition text (one HELP/TYPE header per metric family)."""
        stats = dict(self._engine_stats() if self._engine_stats else {})
        with self._lock:
            out = _family("nanovl_requests_total", "counter", "HTTP requests by endpoint and status code")
            for (endpoint, status), n in sorted(self.requests.items()):
                out.append(f'nanovl_requests_total{{endpoint="{endpoint}",status="{status}"}} {n}')
            out += _family("nanovl_prompt_tokens_total", "counter", "prompt tokens processed")
            out.append(f"nanovl_prompt_tokens_total {self.prompt_tokens}")
            out += _family("nanovl_generation_tokens_total", "counter", "tokens generated")
            out.append(f"nanovl_generation_tokens_total {self.generation_tokens}")
            out += _family("nanovl_num_requests_waiting", "gauge", "requests queued in the engine")
            out.append(f"nanovl_num_requests_waiting {int(stats.get('num_waiting', 0))}")
            out += _family("nanovl_num_requests_running", "gauge", "requests being decoded")
            out.append(f"nanovl_num_requests_running {int(stats.get('num_running', 0))}")
            out += _family("nanovl_time_to_first_token_seconds", "histogram", "time to first token")
            out += self.ttft.lines("nanovl_time_to_first_token_seconds")
            out += _family("nanovl_e2e_request_latency_seconds", "histogram", "end-to-end request latency")
            out += self.e2e.lines("nanovl_e2e_request_latency_seconds")
        return "\n".join(out) + "\n"


def _family(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _fmt(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
