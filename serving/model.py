"""``ServedModel``: what the server needs to know about one model_dir.

The served name is the model_dir's **folder name** (as in a Triton model
repository, and unique where two exports of one network are served side by side);
``name=`` overrides it. The server speaks one version, "1".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from sdk.errors import ConfigError
from sdk.preprocess import Preprocess

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


@dataclass(frozen=True)
class ServedModel:
    """One model as the server sees it.

    ``classes``: what output ``labels`` index. ``preprocess``: the record every
    request goes through. ``max_batch``: most images one backend call takes (the
    model_dir's exported maximum). ``max_det``: K, the rows of every output.
    ``backend_factory`` creates one backend session (called once per instance);
    a backend has ``infer(batch [B, 3, H, W]) -> {num_dets, boxes, scores, labels}``.
    ``info``: string facts (backend, precision, ...) published in the model config.
    ``masks``: an instance segmentation model (the optional ``masks`` output).
    """

    name: str
    classes: tuple[str, ...]
    preprocess: Preprocess
    max_batch: int
    max_det: int
    backend_factory: Callable[[], Any]
    platform: str = "sdk_detector"
    version: str = "1"
    info: Mapping[str, str] = field(default_factory=dict)
    masks: bool = False

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"model name {self.name!r} is not usable in a request: use letters, digits, '_', '-', '.' "
                "(rename the folder or pass --model-name)"
            )

    @classmethod
    def from_model_dir(
        cls, path: str | Path, *, name: str | None = None, device: str = "cpu", trusted_keys: Any = None
    ) -> "ServedModel":
        """Load and verify ``path`` (``sdk.manifest.load_model_dir``; with ``trusted_keys``
        its manifest signature too); backends are created later."""
        from sdk.manifest import load_model_dir
        from sdk.runtime.base import create_backend

        loaded = load_model_dir(path, trusted_keys=trusted_keys)
        manifest = loaded.manifest
        info = {
            "backend": manifest.backend,
            "flavor": manifest.flavor or "",
            "precision": manifest.precision,
            "network": manifest.model_name,
            "network_input": f"{manifest.input.name} {manifest.input.dtype} {list(manifest.input.shape)}",
            "device": device,
            "sdk_version": manifest.sdk_version,
        }
        return cls(
            name=name or Path(loaded.root).resolve().name,
            classes=tuple(manifest.classes),
            preprocess=manifest.preprocess,
            max_batch=manifest.max_batch,
            max_det=manifest.max_det,
            backend_factory=lambda: create_backend(loaded, device=device),
            platform=f"sdk_{manifest.backend}",
            info=info,
            masks=manifest.task == "instance_segmentation",
        )

    def warmup_batch(self, batch_size: int = 1) -> np.ndarray | None:
        """A pad-valued network input [B, 3, H, W] for the static shape, or ``None``."""
        shape = self.preprocess.static_shape
        if shape is None:
            return None
        batch = np.full((batch_size, 3, *shape), self.preprocess.pad_value, np.uint8)
        return batch if self.preprocess.normalize_in_graph else self.preprocess.normalize(batch)

    def create_warm_backend(self) -> Any:
        """A new backend session that has run once (first calls are slow on most runtimes)."""
        backend = self.backend_factory()
        batch = self.warmup_batch(getattr(backend, "min_batch", 1))
        if batch is not None:
            backend.infer(batch)
        return backend
