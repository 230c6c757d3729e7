"""`sdk serve MODEL_DIR [MODEL_DIR ...]`: the inference server, gRPC and HTTP (KServe v2 / Triton protocol).

Each model is served under its model_dir folder name (`--model-name` renames a
single one). gRPC listens on `--port` (stock `tritonclient.grpc`), HTTP on
`--http-port` when given (KServe v2 REST for `tritonclient.http`, TorchServe-style
`curl -T img.jpg http://HOST:PORT/predictions/NAME`, and a browser page at `/`);
`off` turns either one off. One batcher per model serves both. `sdk.serving.Client`
talks to either. SIGTERM / Ctrl-C drain in-flight requests (`--grace-s`) before exiting.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging

from sdk.cli.arguments import add_device_argument

log = logging.getLogger(__name__)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve model_dirs over gRPC and HTTP with dynamic batching (KServe v2 / Triton protocol)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model_dirs", nargs="+", metavar="MODEL_DIR", help="model_dir(s) written by `sdk export`")
    p.add_argument("--model-name", help="serve the (single) model under this name instead of its folder name")
    add_device_argument(p, what="the models run")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8001, help="gRPC port, or 'off' (default 8001, Triton's)")
    p.add_argument(
        "--http-port", type=_port, default=None,
        help="HTTP port (Triton's is 8000): KServe v2 REST, /predictions/NAME uploads and a page at /; default off",
    )
    batching = p.add_argument_group("dynamic batching (Triton's semantics, per model)")
    batching.add_argument(
        "--max-batch-size", type=int, help="most images per backend call (default: the model_dir's max batch)"
    )
    batching.add_argument(
        "--max-queue-delay-us", type=int, default=0,
        help="how long the oldest queued image may wait for a fuller batch, microseconds (default 0: no wait)",
    )
    batching.add_argument(
        "--preferred-batch-size", type=int, nargs="+", default=[], metavar="N",
        help="batch sizes sent as soon as they can be formed",
    )
    batching.add_argument(
        "--max-queue-size", type=int, default=256,
        help="requests waiting per model before new ones get RESOURCE_EXHAUSTED (default 256; 0 = unbounded)",
    )
    batching.add_argument(
        "--instances", type=int, default=1, help="inference workers per model, each its own backend session (default 1)"
    )
    security = p.add_argument_group("security and limits")
    security.add_argument("--tls-cert", help="PEM certificate (chain) file; enables TLS together with --tls-key")
    security.add_argument("--tls-key", help="PEM private key file of --tls-cert")
    security.add_argument(
        "--token-file",
        help="file holding a bearer token; every call except the liveness/readiness probes (and the HTTP page) "
        "must send 'authorization: Bearer <token>'",
    )
    security.add_argument(
        "--max-message-mb", type=int, default=64, help="largest request/response message, MiB (default 64)"
    )
    security.add_argument(
        "--max-images", type=int, default=64, help="most images in one request; more: INVALID_ARGUMENT (default 64)"
    )
    security.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="most pixels (H*W) per image, read from the header before decoding; more: INVALID_ARGUMENT "
        "(default 64000000)",
    )
    security.add_argument(
        "--max-inflight-mb", type=int, default=1024,
        help="decoded pixels all admitted requests may hold, MiB; a request waits for room up to "
        "--admission-wait-s, then gets RESOURCE_EXHAUSTED (default 1024)",
    )
    security.add_argument(
        "--admission-wait-s", type=float, default=5.0,
        help="how long a request may wait for --max-inflight-mb room (default 5)",
    )
    security.add_argument(
        "--trusted-keys", nargs="+", metavar="PUB",
        help="Ed25519 public key PEM file(s) (`sdk keygen`): serve only model_dirs whose manifest is signed by "
        "one of them (`sdk export --sign`)",
    )
    p.add_argument("--metrics-port", type=int, help="serve Prometheus metrics on http://HOST:PORT/metrics")
    p.add_argument(
        "--grace-s", type=float, default=30.0, help="on SIGTERM/SIGINT, seconds to let in-flight requests finish"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from sdk.errors import ConfigError
    from sdk.limits import check_max_pixels
    from sdk.serving.admission import RequestLimits
    from sdk.serving.auth import read_token_file
    from sdk.serving.batcher import BatchingConfig
    from sdk.serving.model import ServedModel
    from sdk.serving.server import InferenceServer, ServerOptions

    if args.model_name and len(args.model_dirs) > 1:
        raise ConfigError("--model-name renames a single model; with several model_dirs, name the folders instead")
    options = ServerOptions(
        host=args.host,
        port=args.port,
        http_port=args.http_port,
        max_message_mb=args.max_message_mb,
        tls_cert=Path(args.tls_cert) if args.tls_cert else None,
        tls_key=Path(args.tls_key) if args.tls_key else None,
        token=read_token_file(args.token_file) if args.token_file else None,
        metrics_port=args.metrics_port,
        grace_s=args.grace_s,
        limits=RequestLimits(
            max_images=args.max_images, max_pixels=check_max_pixels(args.max_pixels),
            max_inflight_mb=args.max_inflight_mb, admission_wait_s=args.admission_wait_s,
        ),
    )
    _warn_if_exposed(options)
    models = []
    for path in args.model_dirs:
        model = ServedModel.from_model_dir(path, name=args.model_name, device=args.device,
                                           trusted_keys=args.trusted_keys)
        batching = BatchingConfig(
            max_batch_size=args.max_batch_size or model.max_batch,
            max_queue_delay_us=args.max_queue_delay_us,
            preferred_batch_sizes=tuple(args.preferred_batch_size),
            max_queue_size=args.max_queue_size,
            instances=args.instances,
        )
        models.append((model, batching))
    asyncio.run(InferenceServer(models, options).serve_until_signal())
    return 0


def _port(text: str) -> int | None:
    """A TCP port number, or None for 'off'."""
    if text.lower() in ("off", "none"):
        return None
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number or 'off', got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0..65535, got {port}")
    return port


def _warn_if_exposed(options) -> None:
    try:
        loopback = ipaddress.ip_address(options.host).is_loopback
    except ValueError:
        loopback = options.host == "localhost"
    if not loopback and (options.tls_cert is None or options.token is None):
        log.warning(
            "listening on %s without %s: anyone who can reach this address can use the server",
            options.host,
            " and ".join(x for x, on in (("TLS", options.tls_cert), ("a token", options.token)) if on is None),
        )
