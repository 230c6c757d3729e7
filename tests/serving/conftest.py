"""Fixtures of the serving tests (helpers in ``serving_support``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serving_support import make_model_dir, make_scenes, serve


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A bright-box model_dir named ``bright``: letterbox 64x96, max batch 8, K = 5."""
    return make_model_dir(tmp_path_factory.mktemp("serving_model"))


@pytest.fixture(scope="module")
def server(model_dir):
    """A shared server, gRPC and HTTP: batches up to 8, waits up to 2 ms for a fuller batch, 1 MiB messages."""
    with serve(model_dir, max_queue_delay_us=2000, max_message_mb=1, http_port=0) as thread:
        yield thread


@pytest.fixture(scope="session")
def scenes() -> list[np.ndarray]:
    """Three RGB images of different sizes, one coloured box each (red, green, blue)."""
    return make_scenes()
