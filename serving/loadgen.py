"""Closed-loop load generator for a KServe v2 detection server (perf_analyzer's method).

For each concurrency level C, C concurrent clients send requests back to back
(each waits for its answer before sending the next) for ``warmup_s`` (not
measured) and then ``duration_s`` seconds. Reported per level: requests and
images per second, client latency percentiles (ms), errors by gRPC status, and
the server's own mean queue and compute time per image, read from the
``ModelStatistics`` RPC before and after the window. Works against ``sdk serve``
and against Triton serving the same signature, over gRPC (``host:port``,
``grpc://``) or KServe v2 REST (``http://``, ``https://``; outputs in binary, as
``tritonclient.http`` asks by default). ``sdk benchmark server`` calls
``run_load``; ``write_csv`` saves the rows.
"""

from __future__ import annotations

import asyncio
import collections
import csv
import os
import time
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient.utils import InferenceServerException

from sdk.errors import ConfigError
from sdk.serving.client import ServerURL, encode_images, http_module
from sdk.serving.status import status_name

CSV_FIELDS = (
    "concurrency",
    "batch_size",
    "requests",
    "errors",
    "duration_s",
    "requests_per_s",
    "inferences_per_s",
    "latency_ms_mean",
    "latency_ms_p50",
    "latency_ms_p90",
    "latency_ms_p95",
    "latency_ms_p99",
    "server_queue_ms",
    "server_compute_ms",
    "error_codes",
)


def run_load(
    url: str,
    model: str,
    *,
    concurrency_levels: Sequence[int] = (1, 2, 4, 8, 16),
    duration_s: float = 10.0,
    images: Sequence[Any],
    token: str | None = None,
    batch_size: int = 1,
    warmup_s: float = 1.0,
    tls: bool = False,
    root_certificates: str | os.PathLike | None = None,
    timeout_s: float | None = 30.0,
    channel_order: str = "bgr",
) -> list[dict[str, Any]]:
    """Measure ``model`` at ``url`` at each concurrency level; one result dict per level.

    ``images``: what the requests carry (paths/bytes are sent encoded as BYTES,
    arrays as UINT8), cycled; each request holds ``batch_size`` of them, encoded
    once before the measurement so the client does not time its own encoding.
    Keys of each dict: ``CSV_FIELDS``; latencies in milliseconds, ``error_codes``
    a ``{status: count}`` dict. Levels run one after the other.
    """
    if not images:
        raise ConfigError("run_load needs at least one image")
    if duration_s <= 0 or batch_size < 1 or any(c < 1 for c in concurrency_levels):
        raise ConfigError("duration_s must be > 0, batch_size and every concurrency level >= 1")
    items = list(images)
    settings = _Settings(url, model, token, tls, root_certificates, timeout_s)
    requests = [
        encode_images(
            [items[(i + j) % len(items)] for j in range(batch_size)], channel_order=channel_order, module=settings.module
        )
        for i in range(0, max(len(items), 1), batch_size)
    ]
    return [
        asyncio.run(_run_level(settings, requests, level, batch_size, duration_s, warmup_s))
        for level in concurrency_levels
    ]


class _Settings:
    """Where and how to call: the protocol's tritonclient module and asyncio client."""

    def __init__(self, url, model, token, tls, root_certificates, timeout_s) -> None:
        self.server = ServerURL.parse(url, tls=tls or root_certificates is not None)
        self.model, self.timeout_s = model, timeout_s
        self.headers = {"authorization": f"Bearer {token}"} if token else None
        self.root_certificates = None if root_certificates is None else os.fspath(root_certificates)
        self.http = self.server.protocol == "http"
        self.module = http_module() if self.http else grpcclient
        self.transport_errors: tuple[type[BaseException], ...] = (OSError, asyncio.TimeoutError)
        if self.http:
            import aiohttp

            self.transport_errors += (aiohttp.ClientError,)

    def client(self):
        if self.http:
            import ssl

            import tritonclient.http.aio as aiohttpclient

            context = ssl.create_default_context(cafile=self.root_certificates) if self.server.tls else None
            return aiohttpclient.InferenceServerClient(
                self.server.address, ssl=self.server.tls, ssl_context=context, conn_timeout=self.timeout_s or 600.0
            )
        return aioclient.InferenceServerClient(
            self.server.address, ssl=self.server.tls, root_certificates=self.root_certificates
        )

    def call_options(self) -> dict[str, Any]:
        """Per-call keywords: the token, and the deadline where the protocol takes one per call."""
        return {"headers": self.headers} if self.http else {"headers": self.headers, "client_timeout": self.timeout_s}


async def _run_level(
    settings: _Settings, requests: list, concurrency: int, batch_size: int, duration_s: float, warmup_s: float
) -> dict[str, Any]:
    latencies: list[float] = []
    errors: collections.Counter = collections.Counter()
    async with settings.client() as client:
        loop_start = time.perf_counter()
        window_start = loop_start + warmup_s
        window_end = window_start + duration_s
        before = None

        async def worker(offset: int) -> None:
            i = offset
            while (started := time.perf_counter()) < window_end:
                try:
                    await client.infer(settings.model, [requests[i % len(requests)]], **settings.call_options())
                    failed = None
                except InferenceServerException as exc:
                    failed = status_name(exc.status())
                except settings.transport_errors:  # HTTP: refused, reset, timed out
                    failed = "UNAVAILABLE"
                if started >= window_start:
                    if failed is None:
                        latencies.append(time.perf_counter() - started)
                    else:
                        errors[failed] += 1
                i += concurrency

        async def snapshot_after_warmup() -> None:
            nonlocal before
            await asyncio.sleep(max(0.0, window_start - time.perf_counter()))
            before = await _server_times(client, settings)

        await asyncio.gather(snapshot_after_warmup(), *(worker(k) for k in range(concurrency)))
        elapsed = time.perf_counter() - window_start
        after = await _server_times(client, settings)
    return _summarize(concurrency, batch_size, latencies, errors, elapsed, before, after)


async def _server_times(client, settings: _Settings) -> tuple[int, int, int, int] | None:
    """(queue count, queue ns, compute count, compute ns) of the model, or None if unavailable."""
    try:
        if settings.http:
            stats = await client.get_inference_statistics(settings.model, headers=settings.headers)
        else:
            stats = await client.get_inference_statistics(settings.model, headers=settings.headers, as_json=True)
    except (InferenceServerException, *settings.transport_errors):
        return None
    entry = stats.get("model_stats", [{}])[0].get("inference_stats", {})

    def pair(key: str) -> tuple[int, int]:
        return int(entry.get(key, {}).get("count", 0)), int(entry.get(key, {}).get("ns", 0))

    return (*pair("queue"), *pair("compute_infer"))


def _summarize(concurrency, batch_size, latencies, errors, elapsed, before, after) -> dict[str, Any]:
    ms = np.asarray(latencies, np.float64) * 1000.0
    pct = np.percentile(ms, [50, 90, 95, 99]) if ms.size else [float("nan")] * 4
    queue_ms = compute_ms = float("nan")
    if before is not None and after is not None:
        dq, dqns, dc, dcns = (a - b for a, b in zip(after, before))
        queue_ms = dqns / dq / 1e6 if dq else float("nan")
        compute_ms = dcns / dc / 1e6 if dc else float("nan")
    return {
        "concurrency": concurrency,
        "batch_size": batch_size,
        "requests": int(ms.size),
        "errors": int(sum(errors.values())),
        "duration_s": round(elapsed, 3),
        "requests_per_s": ms.size / elapsed,
        "inferences_per_s": ms.size * batch_size / elapsed,
        "latency_ms_mean": float(ms.mean()) if ms.size else float("nan"),
        "latency_ms_p50": float(pct[0]),
        "latency_ms_p90": float(pct[1]),
        "latency_ms_p95": float(pct[2]),
        "latency_ms_p99": float(pct[3]),
        "server_queue_ms": queue_ms,
        "server_compute_ms": compute_ms,
        "error_codes": dict(errors),
    }


def write_csv(results: Iterable[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write ``run_load`` rows as CSV (``CSV_FIELDS`` columns; error codes as ``CODE:n;...``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in results:
            row = dict(row)
            row["error_codes"] = ";".join(f"{k}:{v}" for k, v in sorted(row.get("error_codes", {}).items()))
            writer.writerow({k: _fmt(row.get(k)) for k in CSV_FIELDS})
    return path


def format_table(results: Iterable[dict[str, Any]]) -> str:
    """A fixed-width text table of the main columns (what perf_analyzer prints)."""
    header = (
        f"{'conc':>5} {'infer/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p95 ms':>8} {'p99 ms':>8} "
        f"{'queue ms':>9} {'compute ms':>10} {'errors':>6}"
    )
    lines = [header]
    for r in results:
        lines.append(
            f"{r['concurrency']:>5} {r['inferences_per_s']:>9.1f} {r['latency_ms_p50']:>8.2f} {r['latency_ms_p90']:>8.2f} "
            f"{r['latency_ms_p95']:>8.2f} {r['latency_ms_p99']:>8.2f} {r['server_queue_ms']:>9.2f} "
            f"{r['server_compute_ms']:>10.2f} {r['errors']:>6}"
        )
    return "\n".join(lines)


def _fmt(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
