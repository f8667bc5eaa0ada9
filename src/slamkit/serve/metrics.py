"""``GET /metrics``: the server's counters in Prometheus' text format.

``slamkit_requests_total{endpoint,status}``, ``slamkit_request_seconds{endpoint}`` (latency
histogram), ``slamkit_batch_size`` (clips per decoded batch), ``slamkit_queue_depth`` (clips
waiting) and ``slamkit_audio_seconds_total`` (audio received). A registry of its own per server,
so two servers in one process (the tests) never share counts.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServerMetrics:
    """The counters one server keeps."""

    def __init__(self, queue_depth: Callable[[], int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("slamkit_requests", "Requests answered, by endpoint and HTTP status.", ["endpoint", "status"],
                                registry=self.registry)
        self.latency = Histogram("slamkit_request_seconds", "Time from request to answer.", ["endpoint"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.batch_size = Histogram("slamkit_batch_size", "Clips (or segments) per decoded batch.", buckets=BATCH_BUCKETS,
                                    registry=self.registry)
        self.audio_seconds = Counter("slamkit_audio_seconds", "Seconds of audio received.", registry=self.registry)
        depth = Gauge("slamkit_queue_depth", "Clips (or segments) waiting for a batch.", registry=self.registry)
        depth.set_function(lambda: float(queue_depth()))

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(endpoint=endpoint, status=str(status)).inc()
        self.latency.labels(endpoint=endpoint).observe(seconds)

    def text(self) -> bytes:
        """The exposition text."""
        return generate_latest(self.registry)
