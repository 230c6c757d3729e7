"""``Detector``: images in, ``Detections`` in original-image pixels out.

One pipeline for every backend::

    inputs -> sdk.images.load_image -> sdk.preprocess.preprocess_batch
           -> backend.infer (contract 2) -> sdk.postprocess.decode_outputs

Inputs are split into chunks of at most the backend's maximum batch. With more than
one chunk, decoding and preprocessing of the next chunk run on a worker thread
while the backend runs the current one (OpenCV and the runtimes release the GIL).
Torch-free for model_dirs on ONNX Runtime: torch is imported only for ``.pt``
checkpoints.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from sdk.detections import Detections
from sdk.errors import ConfigError, InputError
from sdk.images import ImageInput, load_image
from sdk.limits import check_max_pixels
from sdk.manifest import MANIFEST_NAME, Manifest, load_model_dir
from sdk.postprocess import decode_outputs
from sdk.preprocess import ImageRecord, Preprocess, content_sizes, iter_chunks, preprocess_batch
from sdk.runtime.base import Backend, create_backend

log = logging.getLogger(__name__)

CHECKPOINT_SUFFIXES = (".pt", ".pth")
DEFAULT_TORCH_BATCH = 8
_PREFETCH_CHUNKS = 1  # chunks prepared ahead of the one being inferred


class Detector:
    """Run a detector from a model_dir (``sdk export``) or an SDK ``.pt`` checkpoint.

    Args:
        model: a model_dir folder (its ``manifest.json`` picks the backend) or a
            ``.pt``/``.pth`` checkpoint (eager PyTorch, the reference backend).
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        score_thr: drop detections scoring below this (on top of the threshold the
            model applies itself, ``postprocess["score_thr"]``); default keep all.
        batch_size: images per backend call; default (and at most) the model's
            maximum batch; for checkpoints default 8.
        backend: the backend to use; default the model_dir's (``"onnxruntime"``,
            ``"openvino"``, ``"tensorrt"``, ``"aoti"``) or ``"torch"`` for a checkpoint. A model_dir
            runs only on the backend it was exported for.
        max_pixels: most pixels (H * W) an input image may have, checked from an encoded
            file's header before decoding (default ``sdk.limits.DEFAULT_MAX_PIXELS``,
            64 MP); larger images raise ``InputError``.
        trusted_keys: Ed25519 public keys (PEM files or ``sdk.signing`` key objects);
            when given, a model_dir must carry a manifest signature by one of them
            (``sdk export --sign``), else ``ModelDirError``.

    Calling: ``det(image)`` -> ``Detections``; ``det([images])`` -> ``list[Detections]``.
    Images are anything ``sdk.images.load_image`` reads; numpy arrays are BGR unless
    ``channel_order="rgb"``.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        device: str = "cpu",
        score_thr: float | None = None,
        batch_size: int | None = None,
        backend: str | None = None,
        max_pixels: int | None = None,
        trusted_keys: Sequence | None = None,
    ) -> None:
        self.max_pixels = check_max_pixels(max_pixels)
        path = _resolve_model_path(Path(model))
        self.model_path = path
        self.device = device
        self.manifest: Manifest | None = None
        if path.is_dir():
            loaded = load_model_dir(path, trusted_keys=trusted_keys)
            self.manifest = loaded.manifest
            if backend not in (None, self.manifest.backend):
                raise ConfigError(
                    f"{path} was exported for the {self.manifest.backend!r} backend, not {backend!r}: "
                    f"re-export the checkpoint with `sdk export CKPT --backend {backend}`"
                )
            self.backend: Backend = create_backend(loaded, device=device)
            self.classes = list(self.manifest.classes)
            self.preprocess: Preprocess = self.manifest.preprocess
            self.postprocess = dict(self.manifest.postprocess)
        else:
            if trusted_keys:
                raise ConfigError(f"{path} is a checkpoint; trusted_keys verifies signed model_dirs (`sdk export --sign`)")
            if backend not in (None, "torch"):
                raise ConfigError(
                    f"a .pt checkpoint runs on the 'torch' backend; export it for {backend!r} with `sdk export`"
                )
            from sdk.runtime.torch_backend import TorchBackend

            self.backend, meta = TorchBackend.from_checkpoint(
                path, device=device, max_batch=batch_size or DEFAULT_TORCH_BATCH
            )
            self.classes = list(meta.classes)
            self.preprocess = meta.preprocess
            self.postprocess = dict(meta.postprocess)
        self.batch_size = self._check_batch_size(batch_size)
        self.score_thr = self._check_score_thr(score_thr)

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def __repr__(self) -> str:
        return (
            f"Detector({str(self.model_path)!r}, backend={self.backend_name!r}, device={self.device!r}, "
            f"classes={len(self.classes)}, batch_size={self.batch_size})"
        )

    # -- inference --------------------------------------------------------------------
    def __call__(
        self, images: ImageInput | Sequence[ImageInput], *, channel_order: str = "bgr", score_thr: float | None = None
    ) -> Detections | list[Detections]:
        """Detect objects in one image (-> ``Detections``) or a list of images (-> list).

        A 4-D array [N, H, W, C] counts as a list of N images. ``score_thr`` overrides
        the detector's threshold for this call.
        """
        if isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4):
            return self.detect_batch(list(images), channel_order=channel_order, score_thr=score_thr)
        return self.detect_batch([images], channel_order=channel_order, score_thr=score_thr)[0]

    def detect_batch(
        self, images: Sequence[ImageInput], *, channel_order: str = "bgr", score_thr: float | None = None
    ) -> list[Detections]:
        """One ``Detections`` per input image, in input order."""
        if channel_order not in ("bgr", "rgb"):
            raise InputError(f"channel_order must be 'bgr' or 'rgb', got {channel_order!r}")
        thr = self.score_thr if score_thr is None else self._check_score_thr(score_thr)
        results: list[Detections] = []
        for batch, records in self._prepared_chunks(images, channel_order):
            outputs = self.backend.infer(batch, content_sizes(records))
            results.extend(decode_outputs(outputs, records, self.classes, score_thr=thr))
        return results

    def prepare(
        self, images: Sequence[ImageInput], *, channel_order: str = "bgr"
    ) -> tuple[np.ndarray, list[ImageRecord]]:
        """Decode and preprocess ``images`` into one backend batch [B', 3, H, W]
        (``backend.input_dtype``; B' >= B when the backend needs a fixed batch)."""
        batch, records = preprocess_batch(
            images, self.preprocess, load=partial(load_image, channel_order=channel_order, max_pixels=self.max_pixels)
        )
        short = self.backend.min_batch - len(batch)
        if short > 0:  # a fixed-batch engine: pad with blank images, their rows are ignored
            batch = np.concatenate([batch, np.zeros((short, *batch.shape[1:]), batch.dtype)])
        if batch.dtype != self.backend.input_dtype:
            batch = batch.astype(self.backend.input_dtype)
        return batch, records

    def _prepared_chunks(
        self, images: Sequence[ImageInput], channel_order: str
    ) -> Iterator[tuple[np.ndarray, list[ImageRecord]]]:
        chunks = list(iter_chunks(images, self.batch_size))
        if len(chunks) <= 1:
            yield from (self.prepare(chunk, channel_order=channel_order) for chunk in chunks)
            return
        with ThreadPoolExecutor(max_workers=_PREFETCH_CHUNKS, thread_name_prefix="sdk-preprocess") as pool:
            pending = deque()
            for chunk in chunks:
                pending.append(pool.submit(self.prepare, chunk, channel_order=channel_order))
                if len(pending) > _PREFETCH_CHUNKS:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    # -- argument checks --------------------------------------------------------------
    def _check_batch_size(self, batch_size: int | None) -> int:
        if batch_size is None:
            return self.backend.max_batch
        if not 1 <= batch_size <= self.backend.max_batch:
            raise ConfigError(
                f"batch_size must be in 1..{self.backend.max_batch} (the model's maximum batch), got {batch_size}; "
                "re-export with a larger --max-batch for bigger batches"
            )
        return int(batch_size)

    def _check_score_thr(self, score_thr: float | None) -> float:
        if score_thr is None:
            return 0.0
        if not 0.0 <= score_thr <= 1.0:
            raise ConfigError(f"score_thr must be in [0, 1], got {score_thr}")
        baked = float(self.postprocess.get("score_thr", 0.0))
        if 0 < score_thr < baked:
            log.warning(
                "score_thr %.3g is below the model's own threshold %.3g: nothing under %.3g is returned",
                score_thr,
                baked,
                baked,
            )
        return float(score_thr)


def _resolve_model_path(path: Path) -> Path:
    """The model_dir or checkpoint ``path`` names, or an ``InputError`` saying what to pass."""
    if not path.exists():
        raise InputError(f"model not found: {path} (pass a model_dir written by `sdk export` or an SDK .pt checkpoint)")
    if path.is_dir():
        return path
    if path.name == MANIFEST_NAME:
        return path.parent
    if path.suffix.lower() in CHECKPOINT_SUFFIXES:
        return path
    if (path.parent / MANIFEST_NAME).is_file():
        raise InputError(f"{path} is a file inside a model_dir: pass the folder {path.parent} instead")
    raise InputError(
        f"{path} is neither a model_dir nor a .pt checkpoint: export it into a model_dir with `sdk export`, "
        "or convert torchvision weights with `sdk convert torchvision`"
    )
