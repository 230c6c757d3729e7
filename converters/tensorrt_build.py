"""ONNX (TensorRT flavor) -> TensorRT engine -> model_dir. TensorRT 10 API, imported lazily.

``build_engine`` parses the graph with ``trt.OnnxParser`` (the ``sdk::`` nodes become
the SDK's plugins, ``sdk.trt_plugins.tensorrt_registration``), adds one optimization
profile over the batch range, and serializes the engine:

- profile: min (1, 3, H, W), opt (max(1, max_batch // 2), 3, H, W), max (max_batch, 3, H, W);
- ``fp16``: ``BuilderFlag.FP16``; plugin layers pinned to float32 with
  ``OBEY_PRECISION_CONSTRAINTS`` (NMS boxes and scores, RoI coordinates);
- ``int8``: ``IInt8EntropyCalibrator2`` over calibration images preprocessed by
  ``sdk.preprocess`` (implicit quantization, deprecated since TensorRT 10.1 in favour
  of explicitly quantized graphs, still supported in 10.x);
- timing cache loaded from and saved to ``timing_cache`` (rebuilds take seconds).

Everything that does not need TensorRT (profile shapes, precision names, calibration
batches, the model_dir) is a plain function, tested on CPU. The engine runs only
with the TensorRT version and GPU model it was built on.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, NamedTuple, Sequence

import numpy as np

from sdk.errors import BackendUnavailableError, ConfigError, ModelDirError
from sdk.preprocess import Preprocess

log = logging.getLogger(__name__)

#: the ONNX parser maps an ``sdk::Op`` node to plugin ``sdk::Op`` (namespace = node domain) from 10.10
MIN_TENSORRT = (10, 10)


class ProfileShapes(NamedTuple):
    """Input shapes of one TensorRT optimization profile: ``min``, ``opt``, ``max`` [B, 3, H, W]."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]


def optimization_profile(input_shape: Sequence[int], max_batch: int) -> ProfileShapes:
    """The batch range 1..``max_batch`` at the static (H, W) of ``input_shape`` ((H, W) or
    (B, 3, H, W)); TensorRT tunes kernels for ``opt`` = half the maximum batch."""
    dims = [int(d) for d in input_shape]
    h, w = dims[-2:] if len(dims) in (2, 4) else (-1, -1)
    if h < 1 or w < 1 or (len(dims) == 4 and dims[1] != 3):
        raise ConfigError(f"TensorRT engines need a static input (H, W) or (B, 3, H, W), got {tuple(input_shape)}")
    if max_batch < 1:
        raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
    return ProfileShapes((1, 3, h, w), (max(1, max_batch // 2), 3, h, w), (max_batch, 3, h, w))


def check_tensorrt_version(version: str) -> None:
    """``BackendUnavailableError`` unless ``version`` (``tensorrt.__version__``) is at least ``MIN_TENSORRT``."""
    parts = [int(p) if p.isdigit() else 0 for p in version.split(".")[:2]]
    if tuple(parts + [0] * (2 - len(parts))) < MIN_TENSORRT:
        raise BackendUnavailableError(
            f"TensorRT {version} is too old: the SDK's plugin nodes need TensorRT >= "
            f"{'.'.join(map(str, MIN_TENSORRT))} (pip install -U tensorrt)"
        )


def precision_name(*, fp16: bool, int8: bool) -> str:
    """The manifest ``precision``: ``"int8"`` (INT8 allowed, FP16 too when set), ``"fp16"``, ``"fp32"``."""
    return "int8" if int8 else "fp16" if fp16 else "fp32"


def calibration_batches(
    images: Sequence[Any], preprocess: Preprocess, *, batch_size: int
) -> Iterator[np.ndarray]:
    """Network batches [batch_size, 3, H, W] (uint8, or normalized float32) of ``images``
    (paths or arrays; ``sdk.images.load_image``), exactly as ``Detector`` feeds them.

    Only full batches (a calibrator has one batch size); at least one image per batch
    size is needed.
    """
    from sdk.images import load_image
    from sdk.preprocess import iter_chunks, preprocess_batch

    if batch_size < 1 or len(images) < batch_size:
        raise ConfigError(f"INT8 calibration needs at least {batch_size} images, got {len(images)}")
    for chunk in iter_chunks(list(images), batch_size):
        if len(chunk) == batch_size:
            yield preprocess_batch(chunk, preprocess, load=load_image)[0]


# ----------------------------------------------------------------------------- TensorRT
def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    fp16: bool,
    max_batch: int,
    input_shape: Sequence[int],
    workspace_gb: float = 4.0,
    int8: bool = False,
    calib_images: Sequence[Any] | None = None,
    preprocess: Preprocess | None = None,
    timing_cache: str | os.PathLike | None = None,
) -> Path:
    """Build and serialize a TensorRT engine from a TensorRT-flavor ONNX graph.

    Args:
        onnx_path: graph with input ``images`` [B, 3, H, W] and the contract outputs.
        engine_path: where to write the serialized engine.
        fp16, int8: allow those precisions (plugins stay float32).
        max_batch, input_shape: the profile (``optimization_profile``).
        workspace_gb: builder workspace memory pool limit.
        calib_images, preprocess: INT8 calibration images and their preprocessing.
        timing_cache: file to load the timing cache from (when present) and save it to.

    Raises ``BackendUnavailableError`` without TensorRT / a GPU, ``ModelDirError``
    when the graph does not parse or the build fails.
    """
    from sdk.trt_plugins.tensorrt_registration import register_plugins
    from sdk.runtime.tensorrt_backend import check_tensorrt_available

    check_tensorrt_available("cuda")
    import tensorrt as trt

    check_tensorrt_version(trt.__version__)
    profile_shapes = optimization_profile(input_shape, max_batch)
    if int8 and (not calib_images or preprocess is None):
        raise ConfigError("--int8 needs calibration images (--calib-images) and the model's preprocessing")
    register_plugins()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelDirError(f"TensorRT cannot parse {onnx_path}: {errors[:600]}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, *profile_shapes)
    config.add_optimization_profile(profile)
    if fp16 or int8:
        if fp16:
            config.set_flag(trt.BuilderFlag.FP16)
        _pin_plugins_to_fp32(trt, network, config)
    if int8:
        config.set_flag(trt.BuilderFlag.INT8)
        config.set_calibration_profile(profile)
        batches = calibration_batches(calib_images, preprocess, batch_size=profile_shapes.opt[0])
        config.int8_calibrator = _entropy_calibrator(trt, batches, profile_shapes.opt, Path(engine_path))
    cache = _load_timing_cache(config, timing_cache)

    log.info("building TensorRT engine from %s (fp16=%s, int8=%s, profile %s)", onnx_path, fp16, int8, profile_shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelDirError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    if timing_cache is not None:
        Path(timing_cache).write_bytes(memoryview(cache.serialize()))
    out = Path(engine_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(memoryview(serialized))
    return out


def _pin_plugins_to_fp32(trt: Any, network: Any, config: Any) -> None:
    """Plugin layers compute and output in float32 even when FP16/INT8 are allowed."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type == trt.LayerType.PLUGIN_V3:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                if layer.get_output(j).dtype in (trt.float32, trt.float16):
                    layer.set_output_type(j, trt.float32)
            pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)


def _load_timing_cache(config: Any, path: str | os.PathLike | None) -> Any:
    data = Path(path).read_bytes() if path is not None and Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


def _entropy_calibrator(trt: Any, batches: Iterable[np.ndarray], shape: Sequence[int], engine_path: Path) -> Any:
    """An ``IInt8EntropyCalibrator2`` feeding ``batches`` through one device buffer (torch CUDA)."""
    import torch

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            super().__init__()
            self.batches = iter(batches)
            self.device_batch: torch.Tensor | None = None  # kept alive while TensorRT reads it
            self.cache_path = engine_path.with_suffix(".calib")

        def get_batch_size(self) -> int:
            return int(shape[0])

        def get_batch(self, names: list[str]) -> list[int] | None:
            batch = next(self.batches, None)
            if batch is None:
                return None
            self.device_batch = torch.from_numpy(batch).cuda()
            return [int(self.device_batch.data_ptr())]

        def read_calibration_cache(self) -> bytes | None:
            return self.cache_path.read_bytes() if self.cache_path.is_file() else None

        def write_calibration_cache(self, cache: Any) -> None:
            self.cache_path.write_bytes(bytes(cache))

    return EntropyCalibrator()


# ----------------------------------------------------------------------------- model_dir
def write_tensorrt_model_dir(
    engine_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    onnx_path: str | os.PathLike,
    precision: str,
    model_name: str,
    classes: Sequence[str],
    preprocess: Preprocess,
    postprocess: Mapping[str, float | int],
    max_batch: int,
    source_checkpoint: str | os.PathLike | None = None,
) -> Path:
    """Package an engine as a model_dir: backend and flavor ``"tensorrt"``, the plugins
    the ONNX graph it was built from uses (``sdk::BatchedNMS``, ...), batch 1..max_batch."""
    from sdk.converters.model_dir import write_model_dir
    from sdk.trt_plugins.tensorrt_registration import plugins_of

    static = preprocess.static_shape
    if static is None:
        raise ConfigError("TensorRT engines need a static input size: use letterbox preprocessing")
    return write_model_dir(
        out_dir,
        model_file=engine_path,
        backend="tensorrt",
        flavor="tensorrt",
        precision=precision,
        model_name=model_name,
        classes=classes,
        preprocess=preprocess,
        postprocess=postprocess,
        input_shape=static,
        max_batch=max_batch,
        plugins=plugins_of(onnx_path),
        source_checkpoint=source_checkpoint,
    )


def export_checkpoint_tensorrt(model: Any, meta: Any, out_dir: Path, options: Any, checkpoint: Path) -> Path:
    """``sdk.converters.export.EXPORTERS["tensorrt"]``: eager model -> TensorRT-flavor ONNX
    -> engine -> model_dir. Fails at once (before exporting anything) without TensorRT or a GPU."""
    import tempfile

    import torch

    from sdk.converters.onnx_export import export_onnx
    from sdk.converters.calibration import calibration_paths
    from sdk.models.deploy import build_deploy_module
    from sdk.runtime.tensorrt_backend import check_tensorrt_available

    check_tensorrt_available("cuda")
    static = meta.preprocess.static_shape
    deploy = build_deploy_module(model, preprocess=meta.preprocess, postprocess=meta.postprocess)
    input_dtype = torch.uint8 if meta.preprocess.normalize_in_graph else torch.float32
    with tempfile.TemporaryDirectory(prefix="sdk-trt-") as tmp:
        onnx_path = export_onnx(
            deploy, Path(tmp) / "model.onnx", flavor="tensorrt", input_shape=static, max_batch=options.max_batch,
            opset=options.opset, input_dtype=input_dtype,
        )
        engine = build_engine(
            onnx_path, Path(tmp) / "model.engine", fp16=options.fp16, max_batch=options.max_batch,
            input_shape=static, workspace_gb=options.workspace_gb, int8=options.int8,
            calib_images=calibration_paths(images_dir=options.calib_images, dataset=options.calib_dataset,
                                           count=options.calib_count) if options.int8 else None,
            preprocess=meta.preprocess, timing_cache=options.timing_cache,
        )
        return write_tensorrt_model_dir(
            engine, out_dir, onnx_path=onnx_path, precision=precision_name(fp16=options.fp16, int8=options.int8),
            model_name=meta.model_name, classes=meta.classes, preprocess=meta.preprocess,
            postprocess=meta.postprocess, max_batch=options.max_batch, source_checkpoint=checkpoint,
        )
