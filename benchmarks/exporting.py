"""Checkpoint -> model_dir for the benchmark suite, per (backend, precision), and which exist here.

The export itself belongs to ``sdk export``; ``export_checkpoint`` calls its
per-backend dispatch with ``ExportOptions(backend=..., precision=...)``.
``unavailable_reason`` answers "can this machine run backend B at precision P", so
the suite reports a missing backend or kernel as skipped with the reason instead of
failing. ``calibration_source`` picks the images an int8 export calibrates on.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Any, Sequence

from sdk.benchmarks.targets import EXPORT_BACKENDS, PRECISIONS, ExportTarget
from sdk.errors import BackendUnavailableError

_PACKAGES = {"onnxruntime": ("onnx", "onnxruntime"), "openvino": ("onnx", "openvino"), "aoti": ("torch",),
             "tensorrt": ("onnx", "tensorrt")}
_RUNTIME_MODULES = {b: f"sdk.runtime.{b}_backend" for b in EXPORT_BACKENDS}


def unavailable_reason(backend: str | ExportTarget, device: str = "cpu", precision: str | None = None) -> str | None:
    """Why ``backend`` (or an ``ExportTarget``) at ``precision`` cannot run on ``device``
    here, as one line, or ``None`` when it can."""
    if isinstance(backend, ExportTarget):
        backend, precision = backend.backend, backend.precision
    precision = precision or "fp32"
    on_gpu = str(device).startswith("cuda")
    if backend not in EXPORT_BACKENDS:
        return f"unknown backend {backend!r} (known: {', '.join(EXPORT_BACKENDS)})"
    if precision not in PRECISIONS:
        return f"unknown precision {precision!r} (known: {', '.join(PRECISIONS)})"
    missing = [m for m in _PACKAGES[backend] if importlib.util.find_spec(m) is None]
    if missing:
        return f"Python package {', '.join(missing)} not installed"
    if backend == "tensorrt" and not on_gpu:
        return "TensorRT needs a CUDA GPU (run with --device cuda)"
    if backend == "openvino" and on_gpu:
        return "the SDK runs OpenVINO on the CPU only (run with --device cpu)"
    if on_gpu and backend == "onnxruntime":
        import onnxruntime

        if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
            return "onnxruntime has no CUDAExecutionProvider (install onnxruntime-gpu)"
    if on_gpu:
        import torch

        if not torch.cuda.is_available():
            return "torch sees no CUDA GPU"
    if importlib.util.find_spec(_RUNTIME_MODULES[backend]) is None:
        return f"this sdk installation lacks {_RUNTIME_MODULES[backend]}"
    exporter_gap = _exporter_gap(backend, precision)
    if exporter_gap:
        return exporter_gap
    if backend == "onnxruntime" and not on_gpu and precision in ("fp16", "bf16"):
        return ort_cpu_conv_gap(precision)
    return None


def _exporter_gap(backend: str, precision: str) -> str | None:
    """What ``sdk.converters.export`` lacks for this pair (its own one-line reason, e.g.
    no bf16 for ONNX Runtime), or ``None``."""
    from dataclasses import fields

    from sdk.converters import export
    from sdk.errors import ConfigError

    if backend not in export.EXPORTERS:
        return f"this sdk's exporter has no {backend!r} backend (sdk.converters.export.EXPORTERS)"
    if precision != "fp32" and "precision" not in {f.name for f in fields(export.ExportOptions)}:
        return "this sdk's exporter has no precision option (ExportOptions.precision); only fp32 exports"
    check = getattr(export, "check_backend_precision", None)
    if check is not None:
        try:
            check(backend, precision)
        except ConfigError as exc:
            return str(exc)
    return None


@functools.lru_cache(maxsize=None)
def ort_cpu_conv_gap(precision: str) -> str | None:
    """Whether ONNX Runtime's CPU provider accepts a one-node Conv in ``precision``
    (fp16 or bf16): ``None`` when it does, else the one-line reason. Probed on a tiny
    graph (milliseconds) because kernel coverage changes between releases."""
    import onnxruntime
    from onnx import TensorProto, helper

    dtype = {"fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}[precision]
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "probe",
        [helper.make_tensor_value_info("x", dtype, [1, 4, 8, 8]), helper.make_tensor_value_info("w", dtype, [4, 4, 3, 3])],
        [helper.make_tensor_value_info("y", dtype, None)],
    )
    # opset 22: the first whose Conv admits bfloat16, so a refusal is about kernels, not the schema
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)])
    try:
        onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    except Exception:  # InvalidGraph or NotImplemented, depending on the release
        return (f"ONNX Runtime {onnxruntime.__version__} has no {precision} Conv kernel on the CPU "
                f"(use openvino:{precision})")
    return None


def calibration_source(
    encoded: Sequence[bytes],
    out_dir: str | os.PathLike,
    *,
    dataset: str | os.PathLike | None = None,
    dataset_images: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Where an int8 export of the suite calibrates, as ``ExportOptions`` fields plus a
    description: the suite's dataset when it has one (``calib_dataset`` = the COCO
    annotation file; ``calib_images`` = ``dataset_images`` when the images live
    elsewhere than ``<root>/images``), else the benchmark's own encoded images written
    to ``out_dir/calibration_images`` (``calib_images``)."""
    if dataset is not None:
        if dataset_images is not None:
            return {"calib_images": str(dataset_images),
                    "description": f"the dataset's images ({dataset_images}, all files)"}
        return {"calib_dataset": str(dataset), "description": f"the dataset's images ({dataset})"}
    folder = Path(out_dir) / "calibration_images"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.iterdir():  # a previous suite's images must not leak into this one's calibration
        if old.is_file():
            old.unlink()
    for i, data in enumerate(encoded):
        (folder / f"{i:04d}{_extension(data)}").write_bytes(data)
    return {"calib_images": str(folder),
            "description": f"the {len(encoded)} benchmark images (written to {folder})"}


def _extension(data: bytes) -> str:
    """File extension of encoded image bytes, from their magic number."""
    for magic, ext in ((b"\xff\xd8", ".jpg"), (b"\x89PNG", ".png"), (b"BM", ".bmp"), (b"RIFF", ".webp"),
                       (b"II*\x00", ".tif"), (b"MM\x00*", ".tif")):
        if data.startswith(magic):
            return ext
    return ".jpg"  # OpenCV decodes by content, not by name


def export_checkpoint(
    checkpoint: str | os.PathLike,
    backend: str | ExportTarget,
    out_dir: str | os.PathLike,
    *,
    input_size: tuple[int, int] | None = None,
    max_batch: int = 8,
    device: str = "cpu",
    precision: str | None = None,
    calibration: dict[str, Any] | None = None,
) -> Path:
    """Export ``checkpoint`` into the model_dir ``out_dir`` for ``backend`` at
    ``precision`` (default fp32; or an ``ExportTarget``), with a static input of
    ``input_size`` (H, W; default the checkpoint's record made static) and batches
    1..``max_batch``. ``calibration`` (``calibration_source``) is required for int8.
    Raises ``BackendUnavailableError`` when this machine or installation cannot."""
    target = backend if isinstance(backend, ExportTarget) else ExportTarget(backend, precision or "fp32")
    reason = unavailable_reason(target, device)
    if reason:
        raise BackendUnavailableError(f"cannot export for {target.name}: {reason}")
    from dataclasses import fields

    from sdk.converters.export import ExportOptions
    from sdk.converters.export import export_checkpoint as export

    known = {f.name for f in fields(ExportOptions)}
    options: dict[str, Any] = {"backend": target.backend, "max_batch": max_batch, "input_size": input_size}
    if "device" in known:  # AOTInductor/TensorRT compile for a device
        options["device"] = device
    if target.precision != "fp32":
        options["precision"] = target.precision
    if target.precision == "int8":
        if not calibration:
            raise ValueError(f"export of {target.name} needs calibration (sdk.benchmarks.exporting.calibration_source)")
        options.update({k: v for k, v in calibration.items() if k in known and k.startswith("calib_")})
    return Path(export(checkpoint, out_dir, ExportOptions(**options)))
