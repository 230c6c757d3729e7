"""Shared set-up of the model tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Run the model tests single-threaded (restored afterwards).

    Their inputs are small, so extra threads gain little, and on a shared CPU an
    oversubscribed OpenMP pool makes them many times slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
