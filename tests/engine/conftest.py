"""Fixtures of the training tests: a tiny synthetic dataset (8 train / 4 val images, 96 px),
its config, and one finished 2-epoch run shared by the tests that need a checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine_support import TINY_SIZE, write_tiny_config


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    from sdk.data.synthetic import generate_synthetic_coco

    root = tmp_path_factory.mktemp("tiny_shapes")
    generate_synthetic_coco(root, num_train=8, num_val=4, image_size=TINY_SIZE, seed=0, size_jitter=0.1,
                            objects_per_image=(1, 3), object_size=(16.0, 48.0), clutter=0.2, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_config(tiny_data, tmp_path_factory) -> Path:
    return write_tiny_config(tmp_path_factory.mktemp("cfg") / "tiny.py", tiny_data)


@pytest.fixture(scope="session")
def trained_run(tiny_config, tmp_path_factory) -> Path:
    """A finished 2-epoch run (work dir) shared by the tests that need a checkpoint."""
    from sdk.cli.main import main

    work_dir = tmp_path_factory.mktemp("trained")
    assert main(["train", str(tiny_config), "--work-dir", str(work_dir), "--no-progress"]) == 0
    return work_dir
