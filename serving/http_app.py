"""The HTTP front-end (aiohttp): KServe v2 REST, ``/predictions`` and the browser page.

It runs in the server's asyncio event loop beside ``grpc.aio`` and calls the same
``ServingCore``, so one batcher per model serves both protocols. Shared with the
gRPC side: the bearer token (header ``Authorization: Bearer <token>``; open:
``/v2/health/live``, ``/v2/health/ready`` and the page, which holds no data),
TLS, the message bound (a larger body answers 413), and statuses mapped from
the gRPC ones (``sdk.serving.status``). Errors are JSON ``{"error": message}``,
as Triton's HTTP endpoints answer.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from pathlib import Path

from aiohttp import web

from sdk.serving import http_v2, predictions
from sdk.serving.auth import bearer_problem
from sdk.serving.core import ServingCore
from sdk.serving.protocol import RequestError
from sdk.serving.status import http_status

log = logging.getLogger(__name__)

PAGE = Path(__file__).with_name("static") / "index.html"
OPEN_PATHS = frozenset({"/", "/index.html", "/v2/health/live", "/v2/health/ready"})
# The page loads nothing from elsewhere (it works offline) and may not be framed.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; style-src 'unsafe-inline'; "
    "script-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message}, status=status, headers=headers)


class HttpFrontEnd:
    """The aiohttp application and its listener; ``start`` binds, ``drain`` stops it gracefully."""

    def __init__(self, core: ServingCore, *, token: str | None, max_body_bytes: int) -> None:
        self.core = core
        self._expected = f"Bearer {token}".encode() if token else None
        self._in_flight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.app = web.Application(
            client_max_size=max_body_bytes, middlewares=[self._track, self._errors, self._authenticate]
        )
        http_v2.add_routes(self.app, core)
        predictions.add_routes(self.app, core)
        self.app.router.add_get("/", _page)
        self.app.router.add_get("/index.html", _page)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> int:
        """Listen on ``host:port`` (0 = a free port); returns the bound port."""
        # access_log off: one log line per request drowns the server's own messages under load.
        # handler_cancellation: a client that hangs up cancels its request, whose queued images the
        # batcher then drops before inference, as it does for a cancelled gRPC call.
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=1.0, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, ssl_context=ssl_context, reuse_port=False)
        try:
            await site.start()
        except OSError as exc:
            await self._runner.cleanup()
            reason = os.strerror(exc.errno) if exc.errno else exc  # asyncio's own text repeats the address
            raise OSError(f"cannot listen on {host}:{port} ({reason}); is the port in use? pick another with --http-port") from None
        return self._runner.addresses[0][1]

    async def drain(self, grace_s: float) -> None:
        """Stop accepting connections, let in-flight requests finish (up to ``grace_s``), close."""
        if self._runner is None:
            return
        for site in list(self._runner.sites):
            await site.stop()
        try:
            await asyncio.wait_for(self._idle.wait(), timeout=grace_s)
        except asyncio.TimeoutError:
            log.warning("HTTP: %d request(s) still running after %.0f s; closing them", self._in_flight, grace_s)
        await self._runner.cleanup()
        self._runner = None

    # -- middlewares (outermost first) ---------------------------------------------------
    @web.middleware
    async def _track(self, request: web.Request, handler):
        self._in_flight += 1
        self._idle.clear()
        try:
            return await handler(request)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.set()

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        """``RequestError`` and aiohttp's own HTTP errors as JSON ``{"error": ...}`` with the mapped status."""
        try:
            return await handler(request)
        except RequestError as exc:
            return error_response(http_status(exc.code.name), str(exc))
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
            if exc.status == 413:
                limit = request.app._client_max_size  # noqa: SLF001  (aiohttp keeps it private)
                message = f"request body larger than {limit} bytes; send less or raise --max-message-mb on the server"
            return error_response(exc.status, message, headers={k: v for k, v in exc.headers.items() if k == "Allow"})

    @web.middleware
    async def _authenticate(self, request: web.Request, handler):
        if self._expected is None or request.path in OPEN_PATHS:
            return await handler(request)
        problem = bearer_problem(request.headers.get("Authorization"), self._expected)
        if problem is None:
            return await handler(request)
        return error_response(
            401, f"{problem}: send header 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"}
        )


async def _page(request: web.Request) -> web.Response:
    return web.Response(body=PAGE.read_bytes(), content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS)


def server_ssl_context(cert: Path, key: Path) -> ssl.SSLContext:
    """A TLS server context for the same certificate and key the gRPC side uses."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(cert), str(key))
    return context
