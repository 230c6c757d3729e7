"""Prometheus metrics of the server (prometheus-client), served on ``--metrics-port``.

Each server owns its own ``CollectorRegistry`` (several servers can live in one
process, e.g. in tests). Families, all labelled by ``model``:

- ``sdk_serving_requests_total``: inference requests received;
- ``sdk_serving_request_failures_total`` (+ ``code``, the gRPC status name);
- ``sdk_serving_images_total``: images inferred;
- ``sdk_serving_request_latency_seconds``: ModelInfer wall time, histogram;
- ``sdk_serving_queue_seconds``: per image, queued (decoded and preprocessed) to batch start, histogram;
- ``sdk_serving_compute_seconds``: per batch, stacking + backend + decoding, histogram;
- ``sdk_serving_batch_size``: images per backend call, histogram;
- ``sdk_serving_queue_images``: images waiting now, gauge.
"""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class ServerMetrics:
    """The metric families of one server, in their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        kw = {"registry": self.registry}
        self.requests = Counter("sdk_serving_requests", "Inference requests received.", ["model"], **kw)
        self.failures = Counter(
            "sdk_serving_request_failures", "Inference requests that failed, by gRPC status.", ["model", "code"], **kw
        )
        self.images = Counter("sdk_serving_images", "Images inferred.", ["model"], **kw)
        self.latency = Histogram(
            "sdk_serving_request_latency_seconds", "ModelInfer wall time.", ["model"], buckets=_LATENCY_BUCKETS, **kw
        )
        self.queue = Histogram(
            "sdk_serving_queue_seconds",
            "Per image: queued (after preprocessing) to batch start.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            **kw,
        )
        self.compute = Histogram(
            "sdk_serving_compute_seconds", "Per batch: backend call and decoding.", ["model"], buckets=_LATENCY_BUCKETS, **kw
        )
        self.batch_size = Histogram(
            "sdk_serving_batch_size", "Images per backend call.", ["model"], buckets=_BATCH_BUCKETS, **kw
        )
        self.queued = Gauge("sdk_serving_queue_images", "Images waiting for a batch.", ["model"], **kw)

    def serve(self, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
        """Expose ``/metrics`` over HTTP on ``host:port``; returns a function that stops it."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)

        def stop() -> None:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

        return stop
