"""The SDK's own pipeline behind the four timed stages, for any backend.

``DetectorPipeline`` wraps an ``sdk.Detector`` (a model_dir on ONNX Runtime /
TensorRT / AOTInductor, or a ``.pt`` checkpoint on eager PyTorch) and splits exactly
what ``Detector.detect_batch`` does into stages::

    decode       sdk.images.load_image            encoded bytes -> RGB uint8 HWC
    preprocess   Detector.prepare                 resize, pad, (normalize) -> [B, 3, H, W]
    inference    Detector.backend.infer           the network (contract 2 outputs, host arrays)
    postprocess  sdk.postprocess.decode_outputs   -> Detections in original pixels
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any, Sequence

import numpy as np

from sdk.errors import ConfigError
from sdk.preprocess import content_sizes


class DetectorPipeline:
    """``sdk.Detector`` split into the four stages of ``sdk.benchmarks.timing``.

    Args:
        model: model_dir or ``.pt`` checkpoint.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
        max_batch: for a checkpoint, the largest batch to run (a model_dir has its own).
        input_size: (H, W) network input to run a checkpoint at (letterbox size or the
            keep_ratio canvas); a model_dir runs at its exported shape only.
        name: label in tables (default: the backend's name).
        threads: CPU threads for the network (torch intra-op threads; ONNX Runtime
            ``intra_op_threads``; AOTInductor ``num_threads``); default the library's.
            On a shared machine one thread gives stable numbers: with fewer free
            cores than threads, OpenMP workers spin-wait on busy cores.
    """

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        device: str = "cpu",
        max_batch: int | None = None,
        input_size: tuple[int, int] | None = None,
        name: str | None = None,
        threads: int | None = None,
    ) -> None:
        from sdk.detector import Detector
        from sdk.manifest import load_model_dir
        from sdk.runtime.base import create_backend

        from pathlib import Path

        is_model_dir = Path(model).is_dir() or Path(model).name == "manifest.json"
        self.detector = Detector(model, device=device, batch_size=None if is_model_dir else max_batch)
        if threads:
            set_torch_threads(threads)
            option = _thread_option(self.detector.backend) if self.detector.manifest is not None else None
            if option:  # rebuild the session with the thread count (Detector takes no backend options)
                loaded = load_model_dir(self.detector.model_path, verify_files=False)
                self.detector.backend = create_backend(loaded, device=device, **{option: threads})
        if input_size is not None:
            self._set_input_size(tuple(int(v) for v in input_size))
        self.device = device
        self.name = name or self.detector.backend_name
        self.max_batch = self.detector.backend.max_batch

    def _set_input_size(self, size: tuple[int, int]) -> None:
        pre = self.detector.preprocess
        if self.detector.manifest is not None:
            if pre.static_shape is not None and tuple(pre.static_shape) != size:
                raise ConfigError(
                    f"{self.detector.model_path} was exported for input {pre.static_shape}, not {size}: "
                    "re-export it with that input size, or drop --input-size"
                )
            return
        self.detector.preprocess = replace(pre, size=size) if pre.mode == "letterbox" else replace(pre, canvas=size)

    @property
    def preprocess_record(self):
        return self.detector.preprocess

    @property
    def classes(self) -> list[str]:
        return self.detector.classes

    def decode(self, encoded: Sequence[Any]) -> list[np.ndarray]:
        from sdk.images import load_image

        return [load_image(item) for item in encoded]

    def preprocess(self, images: list[np.ndarray]) -> tuple[np.ndarray, list]:
        return self.detector.prepare(images, channel_order="rgb")

    def infer(self, prepared: tuple[np.ndarray, list]) -> dict[str, np.ndarray]:
        return self.detector.backend.infer(prepared[0], content_sizes(prepared[1]))

    def postprocess(self, raw: dict[str, np.ndarray], prepared: tuple[np.ndarray, list]) -> list:
        from sdk.postprocess import decode_outputs

        return decode_outputs(raw, prepared[1], self.detector.classes, score_thr=self.detector.score_thr)

    def detect(self, images: list[np.ndarray]) -> list:
        """RGB arrays -> Detections (the same stages, untimed; for accuracy runs)."""
        prepared = self.preprocess(images)
        return self.postprocess(self.infer(prepared), prepared)


def set_torch_threads(threads: int) -> None:
    """``torch.set_num_threads(threads)`` when this process uses torch (never imports it)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(threads)


# Backend constructor keywords that set CPU threads (onnxruntime: intra_op_threads; aoti,
# openvino: num_threads), looked up on the class so a new backend needs no entry here.
_THREAD_OPTIONS = ("intra_op_threads", "num_threads", "threads", "inference_num_threads")


def _thread_option(backend: Any) -> str | None:
    """The keyword of ``type(backend)``'s constructor that sets its thread count, or ``None``."""
    import inspect

    try:
        params = inspect.signature(type(backend).__init__).parameters
    except (TypeError, ValueError):
        return None
    return next((p for p in _THREAD_OPTIONS if p in params), None)
