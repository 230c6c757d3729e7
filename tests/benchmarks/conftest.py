"""Shared fixtures of the benchmark tests."""

from __future__ import annotations

import pytest

from sdk.benchmarks.suites import random_checkpoint


@pytest.fixture(scope="module")
def make_random_checkpoint(tmp_path_factory):
    """``make(model_name) -> Path``: a seed-0 random-weight checkpoint, built with one
    torch thread (more threads than free cores make a loaded CI machine erratic)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield lambda name: random_checkpoint(name, tmp_path_factory.mktemp("ckpt") / f"{name}.pt", seed=0)
    torch.set_num_threads(previous)
