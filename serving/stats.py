"""Per-model statistics: Triton's ``ModelStatistics`` counters and the Prometheus metrics.

Called from the event-loop thread only (the batcher records after its executor
returns), so plain integers suffice. Conventions, as Triton's where they apply:
``inference_count`` counts images, ``execution_count`` backend calls; ``success``
/ ``fail`` count requests with their total duration; ``queue`` counts images
(queued after preprocessing, to batch start); ``compute_infer`` counts images with their batch's
compute time; ``batch_stats`` holds one entry per batch size seen.
"""

from __future__ import annotations

import time
from collections import defaultdict

from tritonclient.grpc import service_pb2

from sdk.serving.metrics import ServerMetrics


class _Duration:
    __slots__ = ("count", "ns")

    def __init__(self) -> None:
        self.count = 0
        self.ns = 0

    def add(self, seconds: float, count: int = 1) -> None:
        self.count += count
        self.ns += int(seconds * 1e9)

    def fill(self, proto) -> None:
        proto.count = self.count
        proto.ns = self.ns


class ModelStats:
    """Counters of one served model; mirrors every record into ``metrics`` when given."""

    def __init__(self, model: str, version: str, metrics: ServerMetrics | None = None) -> None:
        self.model = model
        self.version = version
        self._metrics = metrics
        self.success = _Duration()
        self.fail = _Duration()
        self.queue = _Duration()
        self.compute = _Duration()
        self.batches: dict[int, _Duration] = defaultdict(_Duration)
        self.inference_count = 0
        self.execution_count = 0
        self.rejected = 0
        self.expired = 0
        self.last_inference_ms = 0

    # -- recording ---------------------------------------------------------------------
    def record_request(self, seconds: float, *, code: str | None) -> None:
        """One finished ModelInfer; ``code`` is the failure's gRPC status name, None on success."""
        (self.success if code is None else self.fail).add(seconds)
        if self._metrics:
            self._metrics.requests.labels(self.model).inc()
            self._metrics.latency.labels(self.model).observe(seconds)
            if code is not None:
                self._metrics.failures.labels(self.model, code).inc()

    def record_queue(self, seconds: float) -> None:
        self.queue.add(seconds)
        if self._metrics:
            self._metrics.queue.labels(self.model).observe(seconds)

    def record_batch(self, size: int, seconds: float) -> None:
        self.inference_count += size
        self.execution_count += 1
        self.compute.add(seconds * size, count=size)
        self.batches[size].add(seconds)
        self.last_inference_ms = int(time.time() * 1000)
        if self._metrics:
            self._metrics.images.labels(self.model).inc(size)
            self._metrics.compute.labels(self.model).observe(seconds)
            self._metrics.batch_size.labels(self.model).observe(size)

    def record_batch_failure(self, size: int) -> None:
        self.execution_count += 1

    def record_rejected(self) -> None:
        self.rejected += 1

    def record_expired(self) -> None:
        self.expired += 1

    def set_queued(self, images: int) -> None:
        if self._metrics:
            self._metrics.queued.labels(self.model).set(images)

    # -- protocol ----------------------------------------------------------------------
    def to_proto(self) -> service_pb2.ModelStatistics:
        out = service_pb2.ModelStatistics(
            name=self.model,
            version=self.version,
            last_inference=self.last_inference_ms,
            inference_count=self.inference_count,
            execution_count=self.execution_count,
        )
        self.success.fill(out.inference_stats.success)
        self.fail.fill(out.inference_stats.fail)
        self.queue.fill(out.inference_stats.queue)
        self.compute.fill(out.inference_stats.compute_infer)
        for size in sorted(self.batches):
            entry = out.batch_stats.add(batch_size=size)
            self.batches[size].fill(entry.compute_infer)
        return out
