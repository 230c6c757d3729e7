"""``sdk export``'s pipeline: SDK checkpoint -> model_dir, dispatched on the backend.

    from sdk.converters.export import ExportOptions, export_checkpoint
    export_checkpoint("best.pt", "model_dir", ExportOptions(backend="onnxruntime"))

The checkpoint alone is enough: model name, classes, preprocessing and thresholds
come from its meta. Every exporter writes into a staging folder beside ``out_dir``,
which then replaces ``out_dir`` atomically (``sdk.converters.publish``): a kill
mid-export leaves the previous model_dir intact and loadable. With ``sign_key`` the
manifest is signed (``sdk.signing``) before publishing. keep_ratio models get a static canvas
(``Preprocess.with_static_shape``), so the graph has one input size, unless exported with
``dynamic_shape``: then the graph takes any H x W padded to the divisor (torchvision's batching).
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

from sdk.converters.calibration import DEFAULT_CALIB_COUNT, calibration_paths
from sdk.errors import BackendUnavailableError, ConfigError
from sdk.precision import PRECISIONS, check_precision
from sdk.preprocess import Preprocess, dynamic_input_range

log = logging.getLogger(__name__)

EXPORT_INFO_NAME = "export.json"  # beside the model: source checkpoint path, flavor, opset, timing
BACKENDS = ("onnxruntime", "openvino", "tensorrt", "aoti")
DYNAMIC_SHAPE_BACKENDS = ("onnxruntime", "openvino", "tensorrt")  # AOTInductor compiles one input size


@dataclass(frozen=True)
class ExportOptions:
    """How to export.

    Attributes:
        backend: ``"onnxruntime"``, ``"openvino"``, ``"tensorrt"``, ``"aoti"`` or ``"auto"``
            (TensorRT where it and a GPU exist, else AOTInductor on CUDA; on a CPU OpenVINO
            for bf16/int8, else ONNX Runtime: ``sdk.converters.backend_select.choose_backend``).
        precision: ``"fp32"``, ``"fp16"``, ``"bf16"`` or ``"int8"``, baked into the graph
            (``sdk.precision``); ``SUPPORTED_PRECISIONS`` says which backend takes which.
        flavor: ONNX lowering of the custom ops: ``"onnxruntime"`` (standard ONNX ops)
            or ``"tensorrt"`` (``sdk::`` plugin nodes; runs in ONNX Runtime through
            ``sdk.trt_plugins.ort_ops``, for tests).
        max_batch: largest batch the model accepts (batch dimension dynamic 1..max_batch).
        input_size: (H, W) of the network input; default the checkpoint's letterbox
            size, or for keep_ratio a square canvas holding any aspect ratio.
        dynamic_shape: keep_ratio models only: the graph takes any height and width (each
            a multiple of the pad divisor, up to the long-side limit), so every image is
            resized as torchvision does and padded to the divisor only, not to a canvas:
            the detections match torchvision's (``sdk.preprocess.dynamic_input_range``).
        postprocess: overrides of the checkpoint's ``{"score_thr", "iou_thr", "max_det"}``.
        opset: ONNX opset.
        simplify: run onnxsim on the graph (optional, skipped when it cannot).
        device: where the model will run, ``"cpu"`` or ``"cuda[:N]"``: AOTInductor
            compiles for it, ``auto`` chooses by it; default CUDA when torch sees a GPU.
        calib_images, calib_dataset, calib_count: int8 calibration data, a folder of
            images or a COCO annotation file, at most ``calib_count`` images of it
            (preprocessed exactly as ``Detector`` does).
        int8_float_outputs: int8 keeps the class/box predictor layers float32: for a model
            that fails the accuracy gate with them quantized (slower: on RetinaNet R50
            OpenVINO int8 ran 2x slower so).
        workspace_gb: TensorRT builder workspace limit.
        timing_cache: TensorRT timing cache file, read when present and written back.
    """

    backend: str = "onnxruntime"
    precision: str = "fp32"
    flavor: str = "onnxruntime"
    max_batch: int = 8
    input_size: tuple[int, int] | None = None
    dynamic_shape: bool = False
    postprocess: Mapping[str, float | int] = field(default_factory=dict)
    opset: int = 18
    simplify: bool = False
    device: str | None = None
    calib_images: str | None = None
    calib_dataset: str | None = None
    calib_count: int = DEFAULT_CALIB_COUNT
    int8_float_outputs: bool = False
    workspace_gb: float = 4.0
    timing_cache: str | None = None

    @property
    def fp16(self) -> bool:
        return self.precision == "fp16"

    @property
    def int8(self) -> bool:
        return self.precision == "int8"


#: precisions each backend exports; anything else fails before any work with ``UNSUPPORTED``'s reason
SUPPORTED_PRECISIONS = {
    "onnxruntime": ("fp32", "fp16", "int8"),
    "openvino": ("fp32", "fp16", "bf16", "int8"),
    "tensorrt": ("fp32", "fp16", "int8"),
    "aoti": ("fp32", "fp16"),
}
UNSUPPORTED = {
    ("onnxruntime", "bf16"): "ONNX Runtime's CPU provider has no bfloat16 convolution kernels: export bf16 with "
                             "--backend openvino for CPUs",
    ("tensorrt", "bf16"): "the TensorRT exporter builds fp32, fp16 and int8 engines: use --precision fp16",
    ("aoti", "bf16"): "the AOTInductor exporter compiles fp32, or fp16 on CUDA: for bf16 on a CPU use --backend openvino",
    ("aoti", "int8"): "AOTInductor packages are fp32 or fp16: for int8 use --backend onnxruntime or openvino",
}


def check_backend_precision(backend: str, precision: str) -> None:
    """``ConfigError`` (one line: why, and what to use) unless ``backend`` exports ``precision``."""
    check_precision(precision)
    if precision not in SUPPORTED_PRECISIONS.get(backend, PRECISIONS):
        reason = UNSUPPORTED.get((backend, precision), f"--backend {backend} exports {SUPPORTED_PRECISIONS[backend]}")
        raise ConfigError(f"--precision {precision} is not available for --backend {backend}: {reason}")


def int8_activations(backend: str) -> str:
    """The int8 activation scheme (``sdk.converters.quantize.ACTIVATION_SCHEMES``) for
    ``backend``: uint8 for ONNX Runtime's x86 kernels, symmetric int8 for TensorRT and
    OpenVINO (which runs both equally fast)."""
    return "uint8" if backend == "onnxruntime" else "int8"


def export_checkpoint(
    checkpoint: str | os.PathLike,
    out_dir: str | os.PathLike,
    options: ExportOptions,
    *,
    sign_key: str | os.PathLike | None = None,
) -> Path:
    """Export an SDK checkpoint into the model_dir ``out_dir`` (replaced atomically);
    ``sign_key``: an Ed25519 private key PEM to sign the manifest with. Returns ``Path(out_dir)``."""
    from sdk.checkpoint import build_model_from_checkpoint, load_checkpoint
    from sdk.converters.publish import publish_model_dir, staging_dir

    options = resolve_backend(options)
    if options.max_batch < 1:
        raise ConfigError(f"--max-batch must be >= 1, got {options.max_batch}")
    check_backend_precision(options.backend, options.precision)
    if options.precision == "int8":  # fail on missing calibration data before minutes of export work
        if options.flavor == "tensorrt" and options.backend != "tensorrt":
            raise ConfigError("int8 calibration runs the graph in ONNX Runtime, which cannot run the sdk:: plugin "
                              "nodes: export int8 with --flavor onnxruntime (its standard-op graph also parses in "
                              "TensorRT)")
        calibration_paths(images_dir=options.calib_images, dataset=options.calib_dataset, count=options.calib_count)
    if sign_key is not None:  # an unreadable key fails before minutes of export work
        from sdk.signing import load_private_key

        load_private_key(sign_key)
    exporter = EXPORTERS[options.backend]
    loaded = load_checkpoint(checkpoint)
    unknown = set(options.postprocess) - set(loaded.meta.postprocess)
    if unknown:
        raise ConfigError(f"unknown postprocess keys {sorted(unknown)}; known: {sorted(loaded.meta.postprocess)}")
    meta = replace(
        loaded.meta,
        preprocess=export_preprocess(loaded.meta.preprocess, options, loaded.meta.model_name),
        postprocess={**loaded.meta.postprocess, **options.postprocess},
    )
    model, _ = build_model_from_checkpoint(replace(loaded, meta=meta))
    with staging_dir(out_dir) as staging:
        exporter(model, meta, staging, options, Path(checkpoint))
        if sign_key is not None:
            from sdk.signing import sign_model_dir

            sign_model_dir(staging, sign_key)
        return publish_model_dir(staging, out_dir)


def export_preprocess(preprocess: Preprocess, options: ExportOptions, model_name: str) -> Preprocess:
    """The preprocess record of the exported graph: one static input size, or with
    ``options.dynamic_shape`` a keep_ratio record without a canvas (any H x W)."""
    if not options.dynamic_shape:
        return preprocess.with_static_shape(options.input_size)
    if options.input_size is not None:
        raise ConfigError("--dynamic-shape and --input-size exclude each other: a dynamic-shape graph takes every "
                          "size up to the checkpoint's long-side limit")
    if preprocess.mode != "keep_ratio":
        raise ConfigError(f"--dynamic-shape is for keep_ratio models (torchvision's short/long-side resize); "
                          f"{model_name} letterboxes every image to {list(preprocess.size)}: export it without "
                          "--dynamic-shape")
    if preprocess.pad_position != "top_left":
        raise ConfigError("--dynamic-shape pads each image at the bottom and right, as torchvision does: the "
                          f"checkpoint's preprocess pads at {preprocess.pad_position!r}; export it with a static canvas")
    if options.backend not in DYNAMIC_SHAPE_BACKENDS:
        raise ConfigError(f"--dynamic-shape is not available for --backend {options.backend} (it compiles one input "
                          f"size): use --backend {' or '.join(DYNAMIC_SHAPE_BACKENDS)}, or a static --input-size")
    return replace(preprocess, canvas=None)


def onnx_input_shape(preprocess: Preprocess) -> dict[str, Any]:
    """``export_onnx``'s shape arguments for ``preprocess``: its static (H, W), or for a
    varying-shape record the typical (H, W) to trace and ``dynamic_hw`` = (divisor, max side)."""
    static = preprocess.static_shape
    if static is not None:
        return {"input_shape": static}
    _, typical, largest = dynamic_input_range(preprocess)
    return {"input_shape": typical, "dynamic_hw": (preprocess.pad_divisor, max(largest))}


def resolve_backend(options: ExportOptions) -> ExportOptions:
    """``options`` with ``backend="auto"`` replaced by the concrete choice for ``options.device``."""
    from sdk.converters import backend_select

    if options.backend not in ("auto", *EXPORTERS):
        raise ConfigError(f"backend must be one of {['auto', *EXPORTERS]}, got {options.backend!r}")
    if options.backend != "auto":
        return options
    device = options.device or ("cuda" if backend_select.cuda_gpu_available() else "cpu")
    return replace(options, backend=backend_select.choose_backend("auto", device, options.precision), device=device)


def export_precision_onnx(model: Any, meta: Any, tmp: Path, options: ExportOptions) -> tuple[Path, dict[str, Any]]:
    """DeployModule of ``model`` -> ONNX in ``options.precision`` under the folder ``tmp``.

    fp32: the float32 graph. fp16: the network in float16 between explicit casts
    (``sdk.models.deploy.precision``). bf16: the fp16 graph retyped to bfloat16
    (``sdk.converters.bfloat16``, opset 22). int8: the float32 graph quantized to QDQ,
    calibrated on ``options.calib_*`` (``sdk.converters.quantize``).
    Returns ``(onnx path, precision_details for the manifest)``.
    """
    import torch

    from sdk.converters.onnx_export import export_onnx
    from sdk.models.deploy import build_deploy_module
    from sdk.models.deploy.precision import network_dtype_details, with_network_dtype

    deploy = build_deploy_module(model, preprocess=meta.preprocess, postprocess=meta.postprocess)
    details: dict[str, Any] = {}
    if options.precision in ("fp16", "bf16"):
        deploy = with_network_dtype(deploy, torch.float16)
        details = network_dtype_details(deploy)
    input_dtype = torch.uint8 if meta.preprocess.normalize_in_graph else torch.float32
    start = time.perf_counter()
    onnx_path = export_onnx(
        deploy, tmp / "model.onnx", flavor=options.flavor, **onnx_input_shape(meta.preprocess),
        max_batch=options.max_batch, opset=options.opset, input_dtype=input_dtype, simplify=options.simplify,
    )
    log.info("exported %s to ONNX (%s flavor, %s) in %.1f s", meta.model_name, options.flavor,
             "fp16 network" if options.precision in ("fp16", "bf16") else "fp32", time.perf_counter() - start)
    if options.precision == "bf16":
        from sdk.converters.bfloat16 import fp16_graph_to_bf16

        fp16_graph_to_bf16(onnx_path, onnx_path)
        details["network_dtype"] = "bfloat16"
    if options.precision == "int8":
        from sdk.converters.calibration import CalibrationReader, calibration_paths
        from sdk.converters.quantize import quantize_int8

        paths = calibration_paths(images_dir=options.calib_images, dataset=options.calib_dataset,
                                  count=options.calib_count)
        log.info("calibrating on %d images", len(paths))
        reader = CalibrationReader(paths, meta.preprocess, batch_size=min(options.max_batch, 4))
        start = time.perf_counter()
        quantized = tmp / "model_int8.onnx"
        details = quantize_int8(onnx_path, quantized, reader, activations=int8_activations(options.backend),
                                float_output_layers=options.int8_float_outputs)
        details["calibration_source"] = str(Path(options.calib_dataset or options.calib_images).resolve())
        os.replace(quantized, onnx_path)
        log.info("quantized to int8 in %.1f s", time.perf_counter() - start)
    from sdk.converters.onnx_export import set_metadata
    from sdk.runtime.graph_check import NUM_CLASSES_KEY

    set_metadata(onnx_path, {NUM_CLASSES_KEY: str(len(meta.classes))})
    return onnx_path, details


def write_export_info(folder: Path, checkpoint: Path, options: ExportOptions, seconds: float | None) -> Path:
    """``folder/export.json``: the source checkpoint's path (``sdk verify``'s default
    reference, trusted only while its sha256 matches the manifest's), flavor, opset,
    precision and export time. Every exporter packages it beside the model."""
    info = folder / EXPORT_INFO_NAME
    info.write_text(json.dumps({
        "source_checkpoint": str(checkpoint.resolve()),
        "flavor": options.flavor,
        "opset": options.opset,
        "precision": options.precision,
        "export_seconds": None if seconds is None else round(seconds, 1),
    }, indent=2) + "\n")
    return info


def _package(out_dir: Path, model_file: Path, *, backend: str, options: ExportOptions, meta: Any,
             details: dict[str, Any], checkpoint: Path, extra_files: list[Path], plugins: list[str] = (),
             model: Any = None) -> Path:
    """``write_model_dir`` with what every ONNX-based exporter records (moves the files);
    ``model`` (the eager one) tells whether the graph has a ``masks`` output, and its M."""
    from sdk.converters.model_dir import write_model_dir
    from sdk.models.deploy import mask_output_size

    return write_model_dir(
        out_dir, model_file=model_file, backend=backend, flavor=options.flavor, precision=options.precision,
        precision_details=details, model_name=meta.model_name, classes=meta.classes, preprocess=meta.preprocess,
        postprocess=meta.postprocess, input_shape=meta.preprocess.static_shape or (-1, -1), max_batch=options.max_batch,
        plugins=plugins, source_checkpoint=checkpoint, extra_files=extra_files, move=True,
        mask_size=None if model is None else mask_output_size(model),
    )


def export_onnxruntime(model: Any, meta: Any, out_dir: Path, options: ExportOptions, checkpoint: Path) -> Path:
    """DeployModule -> ONNX (``options.flavor``, ``options.precision``) -> model_dir for ONNX Runtime."""
    from sdk.converters.onnx_export import uses_custom_ops

    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        start = time.perf_counter()
        onnx_path, details = export_precision_onnx(model, meta, Path(tmp), options)
        info = write_export_info(Path(tmp), checkpoint, options, time.perf_counter() - start)
        return _package(out_dir, onnx_path, backend="onnxruntime", options=options, meta=meta, details=details,
                        checkpoint=checkpoint, extra_files=[info], plugins=uses_custom_ops(onnx_path), model=model)


def export_openvino(model: Any, meta: Any, out_dir: Path, options: ExportOptions, checkpoint: Path) -> Path:
    """DeployModule -> ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``) -> model_dir.

    OpenVINO's CPU plugin picks its own inference precision (bf16 on CPUs that have
    it) unless told, and the IR cannot carry that setting (``compile_model`` ignores an
    ``INFERENCE_PRECISION_HINT`` in the IR's rt_info), so the runtime backend
    (``sdk.runtime.openvino_backend``) sets f32 from the manifest. The graph then
    decides: its bfloat16 layers (bf16) and QDQ layers (int8) run so, the rest f32. An
    fp16 graph computes in f32 on CPUs: OpenVINO's f16 precision would also turn the
    float32 box decoding to f16, which the graph's casts forbid.
    """
    from sdk.converters.openvino_export import convert_onnx_to_openvino

    if options.flavor != "onnxruntime":
        raise ConfigError("--backend openvino reads the standard-op graph: drop --flavor tensorrt")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export-") as tmp:
        start = time.perf_counter()
        onnx_path, details = export_precision_onnx(model, meta, Path(tmp), options)
        xml, weights = convert_onnx_to_openvino(onnx_path, Path(tmp) / "ir")
        info = write_export_info(Path(tmp), checkpoint, options, time.perf_counter() - start)
        return _package(out_dir, xml, backend="openvino", options=options, meta=meta, details=details,
                        checkpoint=checkpoint, extra_files=[weights, info], model=model)


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
    "openvino": export_openvino,
    "tensorrt": _lazy("sdk.converters.tensorrt_build", "export_checkpoint_tensorrt"),
    "aoti": _lazy("sdk.converters.aoti_export", "export_checkpoint_aoti"),
}


def read_export_info(model_dir: str | os.PathLike) -> dict[str, Any]:
    """The ``export.json`` of a model_dir written here ({} when absent)."""
    path = Path(model_dir) / EXPORT_INFO_NAME
    return json.loads(path.read_text()) if path.is_file() else {}
