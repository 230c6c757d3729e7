"""``sdk`` entry point.

Each subcommand lives in ``sdk/cli/<name>.py`` and exposes ``register(subparsers)``,
which adds its parser and sets ``func(args) -> int``. Modules import heavy libraries
(torch, onnx, grpc) inside ``func`` so ``sdk --help`` stays fast and torch-free.
User errors (``SDKError``, and a missing optional package, named with its pip extra)
print as one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from sdk import __version__
from sdk.errors import SDKError, missing_package_message, one_line

# Order is the order of `sdk --help`.
SUBCOMMANDS = (
    "quickstart",
    "data",
    "train",
    "test",
    "export",
    "keygen",
    "verify",
    "infer",
    "demo",
    "serve",
    "benchmark",
    "analyze",
    "config",
    "publish",
    "convert",
    "triton_repo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sdk",
        description="Train, evaluate, export, run, serve and benchmark object detectors.",
    )
    parser.add_argument("--version", action="version", version=f"sdk {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging and full tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"sdk.cli.{name}")
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except SDKError as exc:
        if args.verbose:
            raise
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as exc:  # an optional extra that is not installed
        message = missing_package_message(exc)
        if message is None or args.verbose:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
