"""``sdk export --backend auto``: pick the fastest backend this machine can build.

On a GPU: TensorRT when its Python package imports, else AOTInductor. On a CPU:
OpenVINO for bf16 and int8, else ONNX Runtime (runs everywhere). The choice is logged
with its reason, since it decides what the model_dir can run on later: a TensorRT
engine runs only on the GPU model and TensorRT version it was built with.
"""

from __future__ import annotations

import importlib.util
import logging

from sdk.errors import ConfigError
from sdk.runtime.base import parse_device

log = logging.getLogger(__name__)

BACKEND_CHOICES = ("auto", "onnxruntime", "openvino", "tensorrt", "aoti")


def choose_backend(requested: str, device: str = "cpu", precision: str = "fp32") -> str:
    """The concrete backend for ``requested`` (``"auto"`` or a backend name) on ``device``.

    ``"auto"`` chooses the backend, never the precision (that is an accuracy decision,
    checked by ``--verify``): on a CUDA device with a visible GPU, ``"tensorrt"`` when
    it is installed, else ``"aoti"`` (fp32/fp16) or ONNX Runtime; on a CPU, OpenVINO
    when it is installed and ``precision`` is bf16 or int8 (the only backend with bf16
    here, and its int8 kernels were the faster on this project's CPUs: committed in
    ``benchmarks/results``), else ONNX Runtime (on par with OpenVINO in fp32, and the
    dependency every install has). Any other name is returned as given.
    """
    if requested not in BACKEND_CHOICES:
        raise ConfigError(f"--backend must be one of {list(BACKEND_CHOICES)}, got {requested!r}")
    if requested != "auto":
        return requested
    kind, _ = parse_device(device)
    if kind == "cuda" and cuda_gpu_available():
        if tensorrt_installed():
            choice, reason = "tensorrt", "TensorRT and a CUDA GPU are available"
        elif precision in ("fp32", "fp16"):
            choice, reason = "aoti", "a CUDA GPU is available but TensorRT is not installed"
        else:
            choice, reason = "onnxruntime", f"a CUDA GPU without TensorRT, and AOTInductor has no {precision}"
    elif kind == "cuda":
        choice, reason = "onnxruntime", f"device={device!r} but no CUDA GPU is visible"
    elif precision in ("bf16", "int8") and openvino_installed():
        choice, reason = "openvino", f"device is cpu and OpenVINO runs {precision} fastest there"
    else:
        choice, reason = "onnxruntime", "device is cpu"
    log.info("--backend auto chose %s (%s)", choice, reason)
    return choice


def openvino_installed() -> bool:
    """Whether the ``openvino`` Python package is installed (not imported: that takes a second)."""
    return importlib.util.find_spec("openvino") is not None


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
