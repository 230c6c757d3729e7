"""``sdk export --backend auto``: pick the fastest backend this machine can build.

TensorRT when its Python package imports and a CUDA GPU is present, else
AOTInductor on the GPU, else ONNX Runtime (runs everywhere). The choice is logged
with its reason, since it decides what the model_dir can run on later: a TensorRT
engine runs only on the GPU model and TensorRT version it was built with.
"""

from __future__ import annotations

import importlib.util
import logging

from sdk.errors import ConfigError
from sdk.runtime.base import parse_device

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "onnxruntime", "tensorrt", "aoti")


def choose_backend(requested: str, device: str = "cpu") -> str:
    """The concrete backend for ``requested`` (``"auto"`` or a backend name) on ``device``.

    ``"auto"``: ``"tensorrt"`` if ``device`` is CUDA, a GPU is present and ``tensorrt``
    is installed; ``"aoti"`` on a CUDA GPU without TensorRT; ``"onnxruntime"`` otherwise
    (CPU, or no GPU found). Any other name is returned as given (after validation).
    """
    if requested not in BACKEND_CHOICES:
        raise ConfigError(f"--backend must be one of {list(BACKEND_CHOICES)}, got {requested!r}")
    if requested != "auto":
        return requested
    kind, _ = parse_device(device)
    if kind == "cpu":
        choice, reason = "onnxruntime", "device is cpu"
    elif not cuda_gpu_available():
        choice, reason = "onnxruntime", f"device={device!r} but no CUDA GPU is visible"
    elif tensorrt_installed():
        choice, reason = "tensorrt", "TensorRT and a CUDA GPU are available"
    else:
        choice, reason = "aoti", "a CUDA GPU is available but TensorRT is not installed"
    log.info("--backend auto chose %s (%s)", choice, reason)
    return choice


def tensorrt_installed() -> bool:
    """Whether the ``tensorrt`` Python package can be imported (without importing it:
    that loads the CUDA libraries and takes seconds)."""
    return importlib.util.find_spec("tensorrt") is not None


def cuda_gpu_available() -> bool:
    """Whether torch (the export toolchain) sees a CUDA GPU; ``False`` without torch."""
    if importlib.util.find_spec("torch") is None:
        return False
    import torch

    return torch.cuda.is_available()
