"""One table of request outcomes: gRPC status names and the HTTP codes the REST side answers.

Both front-ends raise ``RequestError`` with a gRPC status; the HTTP front-end
answers the HTTP code below, and clients turn either back into the gRPC name, so
``ServerError.status`` and the load generator's error counts read the same over
both protocols.
"""

from __future__ import annotations

#: gRPC status name -> HTTP status code
GRPC_TO_HTTP = {
    "OK": 200,
    "INVALID_ARGUMENT": 400,
    "UNAUTHENTICATED": 401,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,  # queue full; an over-size body is 413 (see HTTP_TO_GRPC)
    "CANCELLED": 499,
    "INTERNAL": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}

#: HTTP status code -> gRPC status name (the inverse, plus codes only HTTP produces)
HTTP_TO_GRPC = {
    **{code: name for name, code in GRPC_TO_HTTP.items()},
    405: "UNIMPLEMENTED",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
}


def http_status(grpc_name: str) -> int:
    """The HTTP code for a gRPC status name (500 for names without a mapping)."""
    return GRPC_TO_HTTP.get(grpc_name, 500)


def status_name(status: object) -> str:
    """A gRPC status name from what a tritonclient exception reports: ``"StatusCode.NOT_FOUND"``
    (gRPC), ``"404"`` (HTTP) or ``None``."""
    text = str(status or "UNKNOWN").removeprefix("StatusCode.")
    if not text.isdigit():
        return text
    code = int(text)
    if code in HTTP_TO_GRPC:
        return HTTP_TO_GRPC[code]
    return "INTERNAL" if code >= 500 else "INVALID_ARGUMENT" if code >= 400 else "UNKNOWN"
