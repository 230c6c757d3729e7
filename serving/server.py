"""The asyncio server: gRPC (``grpc.aio``) and HTTP (aiohttp) in one event loop, one batcher per model.

``InferenceServer`` is what ``sdk serve`` runs; ``start_in_thread`` runs one on a
background event loop (tests, notebooks, benchmarks). Both front-ends call one
``ServingCore`` (models, readiness, the inference path). Security defaults: binds
127.0.0.1, TLS when a certificate and key are given, a bearer token when one is
given (see ``sdk.serving.auth`` for the open probes), messages bounded to
``max_message_mb`` (larger ones fail with RESOURCE_EXHAUSTED, HTTP 413), images per
request, pixels per image and decoded pixels in flight bounded by ``limits``
(``sdk.serving.admission``; one in-flight budget shared by all models and both
protocols). ``drain`` (what SIGTERM/SIGINT trigger) marks the server not ready, refuses
new requests, lets in-flight ones finish for ``grace_s`` seconds, then stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import grpc
from tritonclient.grpc import service_pb2_grpc

from sdk.errors import ConfigError, SDKError
from sdk.serving.admission import InflightBudget, RequestLimits
from sdk.serving.auth import BearerTokenInterceptor
from sdk.serving.batcher import BatchingConfig, DynamicBatcher
from sdk.serving.core import Deployment, ServingCore
from sdk.serving.metrics import ServerMetrics
from sdk.serving.model import ServedModel
from sdk.serving.servicer import InferenceServicer
from sdk.serving.stats import ModelStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerOptions:
    """Network, security and process settings of a server.

    ``port``: gRPC, ``http_port``: HTTP; 0 picks a free port (read it back from
    ``InferenceServer.port`` / ``.http_port``), None turns that protocol off.
    ``tls_cert``/``tls_key``: PEM files; both or neither. ``token``: the bearer
    token clients must send. ``metrics_port``: Prometheus ``/metrics`` on ``host``
    (None = off). ``grace_s``: how long draining waits for in-flight requests.
    ``decode_threads``: the pool that decodes and preprocesses images.
    ``limits``: images per request, pixels per image, decoded pixels in flight.
    """

    host: str = "127.0.0.1"
    port: int | None = 8001
    http_port: int | None = None
    max_message_mb: int = 64
    tls_cert: Path | None = None
    tls_key: Path | None = None
    token: str | None = None
    metrics_port: int | None = None
    grace_s: float = 30.0
    decode_threads: int = min(4, os.cpu_count() or 1)
    limits: RequestLimits = RequestLimits()

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("TLS needs both --tls-cert and --tls-key")
        if not 1 <= self.max_message_mb <= 2047:
            raise ConfigError(f"max message size must be 1..2047 MiB, got {self.max_message_mb}")
        if self.port is None and self.http_port is None:
            raise ConfigError("both gRPC and HTTP are off: give --port or --http-port")

    def credentials(self) -> grpc.ServerCredentials | None:
        if self.tls_cert is None:
            return None
        try:
            pair = (Path(self.tls_key).read_bytes(), Path(self.tls_cert).read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read TLS key/certificate: {exc}") from exc
        return grpc.ssl_server_credentials([pair])

    def ssl_context(self):
        """The HTTP side's TLS context (same certificate and key), or None."""
        if self.tls_cert is None:
            return None
        from sdk.serving.http_app import server_ssl_context

        try:
            return server_ssl_context(Path(self.tls_cert), Path(self.tls_key))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot load TLS key/certificate: {exc}") from exc


class InferenceServer:
    """Serves ``models`` (each with its ``BatchingConfig``) over the KServe v2 protocol, gRPC and/or HTTP."""

    def __init__(
        self, models: Sequence[tuple[ServedModel, BatchingConfig]], options: ServerOptions = ServerOptions()
    ) -> None:
        names = [model.name for model, _ in models]
        if not names:
            raise ConfigError("no model to serve")
        if len(set(names)) != len(names):
            raise ConfigError(f"two models share a name in {names}; serve differently named folders")
        self.options = options
        self.models = list(models)
        self.metrics = ServerMetrics()
        self.port: int | None = None
        self.http_port: int | None = None
        self._pool = ThreadPoolExecutor(options.decode_threads, thread_name_prefix="decode")
        self._server: grpc.aio.Server | None = None
        self._deployments: dict[str, Deployment] = {}
        self.core = ServingCore(self._deployments)
        self._http = None
        self._health = None
        self._stop_metrics = None
        self._draining = False
        self._stopped = asyncio.Event()

    @property
    def url(self) -> str:
        """``host:port`` of the gRPC side."""
        return f"{self.options.host}:{self.port}"

    @property
    def http_url(self) -> str:
        """``http(s)://host:port`` of the HTTP side."""
        scheme = "https" if self.options.tls_cert else "http"
        return f"{scheme}://{self.options.host}:{self.http_port}"

    async def start(self) -> None:
        """Create and warm the backends, start the batchers, bind and start the server."""
        try:
            await self._start()
        except BaseException:
            await self._release()
            raise

    async def _start(self) -> None:
        deployments = self._deployments
        budget = InflightBudget(self.options.limits.max_inflight_bytes)
        for model, batching in self.models:
            stats = ModelStats(model.name, model.version, self.metrics)
            batcher = DynamicBatcher(
                model, batching, stats=stats, pool=self._pool, limits=self.options.limits, budget=budget
            )
            deployments[model.name] = Deployment(model, batching, batcher, stats)
        for deployment in deployments.values():
            await deployment.batcher.start()
        if self.options.port is not None:
            await self._start_grpc()
        if self.options.http_port is not None:
            await self._start_http()
        if self.options.metrics_port is not None:
            self._stop_metrics = self.metrics.serve(self.options.metrics_port, self.options.host)
        self.core.ready = True
        await self._set_health(serving=True)
        listening = [f"gRPC {self.url}"] if self._server else []
        listening += [f"HTTP {self.http_url}"] if self._http else []
        log.info("serving %s on %s%s", sorted(deployments), ", ".join(listening), " (TLS)" if self.options.tls_cert else "")

    async def _start_grpc(self) -> None:
        limit = self.options.max_message_mb * 1024 * 1024
        interceptors = [BearerTokenInterceptor(self.options.token)] if self.options.token else []
        self._server = grpc.aio.server(
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
                ("grpc.so_reuseport", 0),  # a second server on a busy port must fail, not share it
            ],
        )
        servicer = InferenceServicer(self.core)
        service_pb2_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, self._server)
        self._health = _add_health_service(self._server, list(self._deployments))
        self.port = self._bind()
        await self._server.start()

    async def _start_http(self) -> None:
        from sdk.serving.http_app import HttpFrontEnd

        self._http = HttpFrontEnd(
            self.core, token=self.options.token, max_body_bytes=self.options.max_message_mb * 1024 * 1024
        )
        try:
            self.http_port = await self._http.start(self.options.host, self.options.http_port, self.options.ssl_context())
        except OSError as exc:
            self._http = None
            raise SDKError(str(exc)) from None

    def _bind(self) -> int:
        address = f"{self.options.host}:{self.options.port}"
        credentials = self.options.credentials()
        try:
            if credentials is None:
                port = self._server.add_insecure_port(address)
            else:
                port = self._server.add_secure_port(address, credentials)
        except RuntimeError as exc:
            raise SDKError(f"cannot listen on {address} ({exc}); is the port in use? pick another with --port") from None
        if port == 0:
            raise SDKError(f"cannot listen on {address}; is the port in use? pick another with --port")
        return port

    async def drain(self, grace_s: float | None = None) -> None:
        """Stop taking requests, finish in-flight ones (up to the grace period), release everything."""
        if (self._server is None and self._http is None) or self._draining:
            return
        self._draining = True
        grace = self.options.grace_s if grace_s is None else grace_s
        log.info("draining: finishing in-flight requests (up to %.0f s)", grace)
        self.core.ready = False
        await self._set_health(serving=False)
        stopping = [self._server.stop(grace)] if self._server is not None else []
        stopping += [self._http.drain(grace)] if self._http is not None else []
        await asyncio.gather(*stopping)
        await self._release()
        self._stopped.set()
        log.info("stopped")

    async def _release(self) -> None:
        """Stop the batchers (and their backends' threads), the decode pool, the metrics endpoint,
        and the HTTP listener when starting failed after it was bound."""
        if self._http is not None and not self._draining:
            await self._http.drain(0)
            self._http = None
        if self._server is not None and self.port is not None and not self._draining:
            with contextlib.suppress(Exception):  # a half-started server: nothing more to release
                await self._server.stop(0)
        for deployment in self._deployments.values():
            await deployment.batcher.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._stop_metrics is not None:
            self._stop_metrics()
            self._stop_metrics = None

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def serve_until_signal(self) -> None:
        """Start, serve until SIGTERM or SIGINT, then drain (the CLI's main loop)."""
        await self.start()
        loop = asyncio.get_running_loop()
        requested = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, requested.set)
        await requested.wait()
        await self.drain()

    async def _set_health(self, *, serving: bool) -> None:
        if self._health is None:
            return
        health_pb2 = self._health[1]
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", "inference.GRPCInferenceService", *self.core.deployments):
            await self._health[0].set(service, status)


def _add_health_service(server: grpc.aio.Server, model_names: list[str]):
    """Register ``grpc.health.v1.Health`` when grpcio-health-checking is installed.

    Services: "" (the server), "inference.GRPCInferenceService" and each model name.
    Returns ``(servicer, health_pb2)`` or ``None`` without the package.
    """
    try:
        from grpc_health.v1 import health, health_pb2, health_pb2_grpc
    except ImportError:
        log.info("grpcio-health-checking not installed: no grpc.health.v1 service (ServerLive/ServerReady still answer)")
        return None
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer, health_pb2


class ServerThread:
    """A server running on its own event loop in a daemon thread (see ``start_in_thread``)."""

    def __init__(self, server: InferenceServer) -> None:
        self.server = server
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="sdk-serving", daemon=True)

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def http_url(self) -> str:
        return self.server.http_url

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self.server.start())
        except BaseException as exc:  # reported to the starting thread
            self._error = exc
            self._started.set()
            return
        self._started.set()
        self._loop.run_until_complete(self.server.wait_stopped())
        self._loop.close()

    def start(self, timeout: float = 120.0) -> "ServerThread":
        self._thread.start()
        if not self._started.wait(timeout):
            raise SDKError(f"server did not start within {timeout:.0f} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, grace_s: float = 5.0) -> None:
        """Drain and stop; returns when the server has stopped."""
        if not self._thread.is_alive():
            return
        future = asyncio.run_coroutine_threadsafe(self.server.drain(grace_s), self._loop)
        future.result(timeout=grace_s + 60)
        self._thread.join(timeout=30)

    def __enter__(self) -> "ServerThread":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_in_thread(
    models: Sequence[tuple[ServedModel, BatchingConfig]], options: ServerOptions = ServerOptions(port=0)
) -> ServerThread:
    """Start a server on a background thread; use as a context manager or call ``.stop()``."""
    return ServerThread(InferenceServer(models, options)).start()
