"""``sdk export``'s pipeline: SDK checkpoint -> model_dir, dispatched on the backend.

    from sdk.converters.export import ExportOptions, export_checkpoint
    export_checkpoint("best.pt", "model_dir", ExportOptions(backend="onnxruntime"))

The checkpoint alone is enough: model name, classes, preprocessing and thresholds
come from its meta. keep_ratio models get a static canvas
(``Preprocess.with_static_shape``), so every exported graph has one input size.
``EXPORTERS`` maps a backend to its exporter ``(model, meta, out_dir, options,
checkpoint) -> Path``; the TensorRT and AOTInductor exporters plug in there.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping

from sdk.errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)

EXPORT_INFO_NAME = "export.json"  # beside the model: source checkpoint path, flavor, opset, timing
BACKENDS = ("onnxruntime", "tensorrt", "aoti")


@dataclass(frozen=True)
class ExportOptions:
    """How to export.

    Attributes:
        backend: ``"onnxruntime"``, ``"tensorrt"``, ``"aoti"`` or ``"auto"`` (TensorRT
            where it and a GPU exist, else AOTInductor on CUDA, else ONNX Runtime:
            ``sdk.converters.backend_select.choose_backend``).
        flavor: ONNX lowering of the custom ops: ``"onnxruntime"`` (standard ONNX ops)
            or ``"tensorrt"`` (``sdk::`` plugin nodes; runs in ONNX Runtime through
            ``sdk.trt_plugins.ort_ops``, for tests).
        max_batch: largest batch the model accepts (batch dimension dynamic 1..max_batch).
        input_size: (H, W) of the network input; default the checkpoint's letterbox
            size, or for keep_ratio a square canvas holding any aspect ratio.
        postprocess: overrides of the checkpoint's ``{"score_thr", "iou_thr", "max_det"}``.
        fp16: half precision (TensorRT, and AOTInductor on CUDA).
        opset: ONNX opset.
        simplify: run onnxsim on the graph (optional, skipped when it cannot).
        device: where the model will run, ``"cpu"`` or ``"cuda[:N]"``: AOTInductor
            compiles for it, ``auto`` chooses by it; default CUDA when torch sees a GPU.
        int8, calib_images: TensorRT INT8 with entropy calibration on the images of
            this folder (preprocessed exactly as ``Detector`` does).
        workspace_gb: TensorRT builder workspace limit.
        timing_cache: TensorRT timing cache file, read when present and written back.
    """

    backend: str = "onnxruntime"
    flavor: str = "onnxruntime"
    max_batch: int = 8
    input_size: tuple[int, int] | None = None
    postprocess: Mapping[str, float | int] = field(default_factory=dict)
    fp16: bool = False
    opset: int = 18
    simplify: bool = False
    device: str | None = None
    int8: bool = False
    calib_images: str | None = None
    workspace_gb: float = 4.0
    timing_cache: str | None = None


def export_checkpoint(checkpoint: str | os.PathLike, out_dir: str | os.PathLike, options: ExportOptions) -> Path:
    """Export an SDK checkpoint into the model_dir ``out_dir``; returns ``Path(out_dir)``."""
    from sdk.checkpoint import build_model_from_checkpoint, load_checkpoint

    options = resolve_backend(options)
    if options.max_batch < 1:
        raise ConfigError(f"--max-batch must be >= 1, got {options.max_batch}")
    if options.int8 and options.backend != "tensorrt":
        raise ConfigError(f"--int8 is a TensorRT build option; --backend {options.backend} exports fp32 or fp16")
    if options.int8 and not options.calib_images:
        raise ConfigError("--int8 needs --calib-images DIR: a folder of representative images to calibrate on")
    exporter = EXPORTERS[options.backend]
    loaded = load_checkpoint(checkpoint)
    unknown = set(options.postprocess) - set(loaded.meta.postprocess)
    if unknown:
        raise ConfigError(f"unknown postprocess keys {sorted(unknown)}; known: {sorted(loaded.meta.postprocess)}")
    meta = replace(
        loaded.meta,
        preprocess=loaded.meta.preprocess.with_static_shape(options.input_size),
        postprocess={**loaded.meta.postprocess, **options.postprocess},
    )
    model, _ = build_model_from_checkpoint(replace(loaded, meta=meta))
    return exporter(model, meta, Path(out_dir), options, Path(checkpoint))


def resolve_backend(options: ExportOptions) -> ExportOptions:
    """``options`` with ``backend="auto"`` replaced by the concrete choice for ``options.device``."""
    from sdk.converters import backend_select

    if options.backend not in ("auto", *EXPORTERS):
        raise ConfigError(f"backend must be one of {['auto', *EXPORTERS]}, got {options.backend!r}")
    if options.backend != "auto":
        return options
    device = options.device or ("cuda" if backend_select.cuda_gpu_available() else "cpu")
    return replace(options, backend=backend_select.choose_backend("auto", device), device=device)


def export_onnxruntime(model: Any, meta: Any, out_dir: Path, options: ExportOptions, checkpoint: Path) -> Path:
    """DeployModule -> ONNX (``options.flavor``) -> model_dir for the ONNX Runtime backend."""
    import torch

    from sdk.converters.model_dir import write_model_dir
    from sdk.converters.onnx_export import export_onnx, uses_custom_ops
    from sdk.models.deploy import build_deploy_module

    if options.fp16:
        raise ConfigError(
            "--fp16 is not available for --backend onnxruntime (the graph is exported in fp32); "
            "fp16 is a TensorRT build option: use --backend tensorrt"
        )
    deploy = build_deploy_module(model, preprocess=meta.preprocess, postprocess=meta.postprocess)
    input_dtype = torch.uint8 if meta.preprocess.normalize_in_graph else torch.float32
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        start = time.perf_counter()
        onnx_path = export_onnx(
            deploy, Path(tmp) / "model.onnx", flavor=options.flavor, input_shape=meta.preprocess.static_shape,
            max_batch=options.max_batch, opset=options.opset, input_dtype=input_dtype, simplify=options.simplify,
        )
        seconds = time.perf_counter() - start
        info = Path(tmp) / EXPORT_INFO_NAME
        info.write_text(json.dumps({
            "source_checkpoint": str(checkpoint.resolve()),
            "flavor": options.flavor,
            "opset": options.opset,
            "export_seconds": round(seconds, 1),
        }, indent=2) + "\n")
        log.info("exported %s to ONNX (%s flavor) in %.1f s", meta.model_name, options.flavor, seconds)
        return write_model_dir(
            out_dir,
            model_file=onnx_path,
            backend="onnxruntime",
            flavor=options.flavor,
            precision="fp32",
            model_name=meta.model_name,
            classes=meta.classes,
            preprocess=meta.preprocess,
            postprocess=meta.postprocess,
            input_shape=meta.preprocess.static_shape,
            max_batch=options.max_batch,
            plugins=uses_custom_ops(onnx_path),
            source_checkpoint=checkpoint,
            extra_files=[info],
            move=True,
        )


def _not_available(backend: str, missing: str) -> Callable[..., Path]:
    def exporter(*_args: Any, **_kwargs: Any) -> Path:
        raise BackendUnavailableError(
            f"--backend {backend} is not available in this build: {missing}. "
            "Export with --backend onnxruntime (add --flavor tensorrt for a graph with the TensorRT plugin nodes)"
        )

    return exporter


def _lazy(module: str, name: str) -> Callable[..., Path]:
    """The exporter ``module.name``, imported on first use (TensorRT / torch stay unimported until then)."""

    def exporter(*args: Any, **kwargs: Any) -> Path:
        import importlib

        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    return exporter


EXPORTERS: dict[str, Callable[..., Path]] = {
    "onnxruntime": export_onnxruntime,
    "tensorrt": _lazy("sdk.converters.tensorrt_build", "export_checkpoint_tensorrt"),
    "aoti": _lazy("sdk.converters.aoti_export", "export_checkpoint_aoti"),
}


def read_export_info(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``export.json`` of a model_dir written here ({} when absent)."""
    path = Path(model_dir) / EXPORT_INFO_NAME
    return json.loads(path.read_text()) if path.is_file() else {}
