"""Helpers for the serving tests: the bright-box ONNX detector's model_dir
(``support.bright_box``: finds the one bright object of an image, deterministically)
and servers.

It runs in well under a millisecond, so the tests exercise the server, not the model.
Servers run in-process on a free localhost port (``start_in_thread``); tests talk to
them only through ``tritonclient.grpc`` and ``sdk.serving.Client``. The fixtures
live in ``conftest.py``; test modules import these helpers by name.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import cv2
import numpy as np
from support.bright_box import CLASSES, bright_box_model_dir, draw_scene

from sdk.preprocess import Preprocess
from sdk.serving.batcher import BatchingConfig
from sdk.serving.model import ServedModel
from sdk.serving.server import ServerOptions, start_in_thread

__all__ = ["CLASSES", "draw_scene"]  # re-exported for the serving test modules

MODEL_NAME = "bright"
MAX_DET = 5
MAX_BATCH = 8
PREPROCESS = Preprocess(mode="letterbox", size=(64, 96))


def make_model_dir(work: Path) -> Path:
    """A bright-box model_dir ``work/bright``: letterbox 64x96, max batch 8, K = 5."""
    return bright_box_model_dir(work, preprocess=PREPROCESS, out_name=MODEL_NAME, max_batch=MAX_BATCH, max_det=MAX_DET)


@contextlib.contextmanager
def serve(model_dir: Path, *, backend_wrapper=None, name: str | None = None, **settings):
    """Run a server on a free port for ``model_dir``; ``settings`` split into
    ``BatchingConfig`` fields and ``ServerOptions`` fields. ``backend_wrapper(backend)``
    wraps each instance's backend (e.g. ``GatedBackend``)."""
    batching_keys = {"max_batch_size", "max_queue_delay_us", "preferred_batch_sizes", "max_queue_size", "instances"}
    batching = {k: v for k, v in settings.items() if k in batching_keys}
    options = {k: v for k, v in settings.items() if k not in batching_keys}
    model = ServedModel.from_model_dir(model_dir, name=name)
    if backend_wrapper is not None:
        factory = model.backend_factory
        model = ServedModel(**{**vars(model), "backend_factory": lambda: backend_wrapper(factory())})
    batching.setdefault("max_batch_size", MAX_BATCH)
    thread = start_in_thread([(model, BatchingConfig(**batching))], ServerOptions(**{"port": 0, **options}))
    try:
        yield thread
    finally:
        thread.stop(grace_s=2.0)


class GatedBackend:
    """Wraps a backend: ``infer`` records batch sizes and contents, sets ``entered`` and
    waits for ``gate``."""

    def __init__(self, backend, gate: threading.Event | None = None) -> None:
        self._backend = backend
        self.min_batch = backend.min_batch
        self.max_batch = backend.max_batch
        self.gate = gate or threading.Event()
        self.entered = threading.Event()
        self.batch_sizes: list[int] = []
        self.batches: list = []

    def infer(self, batch, image_sizes=None):
        self.batch_sizes.append(len(batch))
        self.batches.append(batch.copy())
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        return self._backend.infer(batch, image_sizes)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return data.tobytes()


def make_scenes() -> list[np.ndarray]:
    """Three RGB images of different sizes, one coloured box each (red, green, blue)."""
    return [
        draw_scene(100, 150, (10, 20, 60, 70), rgb=(255, 0, 0)),
        draw_scene(240, 180, (100, 30, 170, 200), rgb=(0, 255, 0)),
        draw_scene(77, 310, (200, 5, 300, 70), rgb=(0, 0, 255)),
    ]
