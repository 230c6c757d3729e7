"""Checkpoint -> model_dir for the benchmark suite, per backend, and which backends exist here.

The export itself belongs to ``sdk export``; ``export_checkpoint`` calls its
per-backend dispatch. ``unavailable_reason`` answers "can this machine run backend B",
so the suite reports a missing backend as skipped with the reason instead of failing.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from sdk.errors import BackendUnavailableError

EXPORT_BACKENDS = ("onnxruntime", "aoti", "tensorrt")


def unavailable_reason(backend: str, device: str = "cpu") -> str | None:
    """Why ``backend`` cannot run on ``device`` here, or ``None`` when it can."""
    on_gpu = str(device).startswith("cuda")
    if backend not in EXPORT_BACKENDS:
        return f"unknown backend {backend!r} (known: {', '.join(EXPORT_BACKENDS)})"
    needs = {"onnxruntime": ("onnx", "onnxruntime"), "aoti": ("torch",), "tensorrt": ("onnx", "tensorrt")}[backend]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        return f"Python package {', '.join(missing)} not installed"
    if backend == "tensorrt" and not on_gpu:
        return "TensorRT needs a CUDA GPU (run with --device cuda)"
    if on_gpu and backend == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    if on_gpu:
        import torch

        if not torch.cuda.is_available():
            return "torch sees no CUDA GPU"
    for module in {"onnxruntime": ("sdk.runtime.onnxruntime_backend",), "aoti": ("sdk.runtime.aoti_backend",),
                   "tensorrt": ("sdk.runtime.tensorrt_backend",)}[backend]:
        if importlib.util.find_spec(module) is None:
            return f"this sdk installation lacks {module}"
    return None


def export_checkpoint(
    checkpoint: str | os.PathLike,
    backend: str,
    out_dir: str | os.PathLike,
    *,
    input_size: tuple[int, int] | None = None,
    max_batch: int = 8,
    device: str = "cpu",
) -> Path:
    """Export ``checkpoint`` into the model_dir ``out_dir`` for ``backend`` (fp32), with
    a static input of ``input_size`` (H, W; default the checkpoint's record made static)
    and batches 1..``max_batch``. Raises ``BackendUnavailableError`` when it cannot."""
    reason = unavailable_reason(backend, device)
    if reason:
        raise BackendUnavailableError(f"cannot export for {backend}: {reason}")
    from dataclasses import fields

    from sdk.converters.export import ExportOptions
    from sdk.converters.export import export_checkpoint as export

    options = {"backend": backend, "max_batch": max_batch, "input_size": input_size}
    if "device" in {f.name for f in fields(ExportOptions)}:  # AOTInductor/TensorRT compile for a device
        options["device"] = device
    return Path(export(checkpoint, out_dir, ExportOptions(**options)))
