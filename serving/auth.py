"""Bearer-token authentication: a gRPC server interceptor (the HTTP side uses ``bearer_problem``).

Every RPC must carry the metadata ``authorization: Bearer <token>`` or fails with
UNAUTHENTICATED, except the liveness/readiness probes an orchestrator sends
without credentials: ``ServerLive``, ``ServerReady`` and the standard
``grpc.health.v1.Health`` service. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from pathlib import Path

import grpc

from sdk.errors import ConfigError

OPEN_METHODS = frozenset(
    {
        "/inference.GRPCInferenceService/ServerLive",
        "/inference.GRPCInferenceService/ServerReady",
        "/grpc.health.v1.Health/Check",
        "/grpc.health.v1.Health/Watch",
    }
)


def read_token_file(path: str | Path) -> str:
    """The token in ``path`` (surrounding whitespace stripped); must be non-empty."""
    path = Path(path)
    try:
        token = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc.strerror or exc}") from exc
    if not token or any(ch.isspace() for ch in token):
        raise ConfigError(f"token file {path} must hold one token without spaces (e.g. `openssl rand -hex 32 > {path}`)")
    return token


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Rejects calls to methods outside ``open_methods`` without the right bearer token."""

    def __init__(self, token: str, *, open_methods: frozenset[str] = OPEN_METHODS) -> None:
        if not token:
            raise ConfigError("the bearer token is empty")
        self._expected = f"Bearer {token}".encode()
        self._open = open_methods

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or handler_call_details.method in self._open:
            return handler
        metadata = handler_call_details.invocation_metadata or ()
        offered = next((value for key, value in metadata if key == "authorization"), None)
        problem = bearer_problem(offered, self._expected)
        if problem is None:
            return handler
        return _denying_handler(handler, f"{problem}: send metadata 'authorization: Bearer <token>'")


def bearer_problem(offered: str | bytes | None, expected: bytes) -> str | None:
    """None when ``offered`` equals ``expected`` (b"Bearer <token>"; constant time), else what is wrong."""
    if offered is not None and hmac.compare_digest(_as_bytes(offered), expected):
        return None
    return "missing bearer token" if offered is None else "invalid bearer token"


def _as_bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode()


def _denying_handler(handler: grpc.RpcMethodHandler, message: str) -> grpc.RpcMethodHandler:
    """A handler of the same streaming kind as ``handler`` that answers UNAUTHENTICATED."""

    async def deny(request_or_iterator, context):
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny, **serializers)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny, **serializers)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny, **serializers)
    return grpc.unary_unary_rpc_method_handler(deny, **serializers)
