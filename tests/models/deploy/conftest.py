"""Session-scoped, train-nothing fixtures: random-weight tiny checkpoints and their
exports, each built once and shared by every test that asks for it."""

from __future__ import annotations

import pytest
from deploy_support import save_random_checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """``tiny_checkpoint(name) -> (checkpoint path, eager model)``, cached per name."""
    cache = {}
    folder = tmp_path_factory.mktemp("checkpoints")

    def make(name: str):
        if name not in cache:
            cache[name] = save_random_checkpoint(folder / f"{name}.pt", name)
        return cache[name]

    return make


@pytest.fixture(scope="session")
def exported_model_dir(tiny_checkpoint, tmp_path_factory):
    """``exported_model_dir(name, flavor) -> model_dir`` (``sdk export`` pipeline, ONNX
    Runtime backend, max batch 8, traced at batch 2), cached per (name, flavor)."""
    import torch

    from sdk.converters.export import ExportOptions, export_checkpoint

    cache = {}
    folder = tmp_path_factory.mktemp("model_dirs")

    def make(name: str, flavor: str):
        if (name, flavor) not in cache:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                checkpoint, _ = tiny_checkpoint(name)
                options = ExportOptions(backend="onnxruntime", flavor=flavor, max_batch=8)
                cache[name, flavor] = export_checkpoint(checkpoint, folder / f"{name}-{flavor}", options)
            finally:
                torch.set_num_threads(threads)
        return cache[name, flavor]

    return make
