"""gRPC and HTTP serving (KServe v2 / Triton protocol), dynamic batcher, client, load generator.

    sdk serve runs/quickstart/model_dir --port 8001 --http-port 8000   # the server (CLI)

    from sdk.serving import Client
    Client("127.0.0.1:8001").detect("image.jpg")             # -> Detections (a list for a list)
    Client("http://127.0.0.1:8000").detect("image.jpg")      # the same over REST

Public names load lazily, so ``import sdk.serving`` stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {
    "Client": "sdk.serving.client",
    "ServerError": "sdk.serving.client",
    "BatchingConfig": "sdk.serving.batcher",
    "ServedModel": "sdk.serving.model",
    "InferenceServer": "sdk.serving.server",
    "ServerOptions": "sdk.serving.server",
    "start_in_thread": "sdk.serving.server",
    "run_load": "sdk.serving.loadgen",
}

__all__ = sorted(_LAZY)

if TYPE_CHECKING:  # pragma: no cover
    from sdk.serving.batcher import BatchingConfig
    from sdk.serving.client import Client, ServerError
    from sdk.serving.loadgen import run_load
    from sdk.serving.model import ServedModel
    from sdk.serving.server import InferenceServer, ServerOptions, start_in_thread


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdk.serving' has no attribute {name!r}")
