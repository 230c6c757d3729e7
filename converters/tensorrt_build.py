"""ONNX -> TensorRT engine -> model_dir, for TensorRT 10.10+ and 11.x (imported lazily).

``build_engine`` parses the graph with ``trt.OnnxParser`` into a **strongly typed**
network (``sdk.runtime.tensorrt_api.network_flags``): every tensor keeps the dtype the
graph gives it, so the precision is the exported graph's (``export_precision_onnx``):

- fp32: the float32 graph;
- fp16: the network in float16 between explicit casts, decoding / NMS / RoIAlign float32;
- int8: the QDQ graph with symmetric int8 activations (TensorRT's explicit quantization),
  calibrated by ``sdk.converters.quantize`` before TensorRT sees it.

No builder precision flags, no calibrator, no ``EXPLICIT_BATCH`` (all removed in
TensorRT 11; TensorRT 10 builds the same network the same way). The ``sdk::`` nodes
become the SDK's plugins (``sdk.trt_plugins.tensorrt_registration``), whose ahead-of-time
kernels TensorRT compiles into the engine (``PREFER_AOT_PYTHON_PLUGINS``). One
optimization profile over the batch range; the timing cache is loaded from and saved
to ``timing_cache``. The engine is tied to the TensorRT version and GPU SM it was built
with: both go into the manifest's ``build_target``, and the runtime checks them.

Everything that does not need TensorRT (profile shapes, the model_dir, the version
facts) is a plain function, tested on CPU; the TensorRT calls are tested against
stand-ins with the 10.x and 11.x API surfaces (tests/converters/tensorrt_surface.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

from sdk.errors import ConfigError, ModelDirError
from sdk.preprocess import Preprocess, dynamic_input_range
from sdk.runtime.tensorrt_api import MIN_TENSORRT, check_tensorrt_version, network_flags

log = logging.getLogger(__name__)

__all__ = ["MIN_TENSORRT", "ProfileShapes", "build_engine", "check_tensorrt_version", "optimization_profile",
           "write_tensorrt_model_dir", "export_checkpoint_tensorrt", "graph_flavor"]


class ProfileShapes(NamedTuple):
    """Input shapes of one TensorRT optimization profile: ``min``, ``opt``, ``max`` [B, 3, H, W]."""

    min: tuple[int, int, int, int]
    opt: tuple[int, int, int, int]
    max: tuple[int, int, int, int]


def optimization_profile(
    input_shape: Sequence[int], max_batch: int, *, hw_range: Sequence[Sequence[int]] | None = None
) -> ProfileShapes:
    """The batch range 1..``max_batch`` at the static (H, W) of ``input_shape`` ((H, W) or
    (B, 3, H, W)), or, for a dynamic-shape graph (H, W = -1), over ``hw_range`` = the
    (min, opt, max) (H, W) of ``sdk.preprocess.dynamic_input_range``; TensorRT tunes
    kernels for ``opt``: half the maximum batch at the typical (H, W)."""
    dims = [int(d) for d in input_shape]
    h, w = dims[-2:] if len(dims) in (2, 4) else (0, 0)
    if len(dims) not in (2, 4) or (len(dims) == 4 and dims[1] != 3) or ((h, w) != (-1, -1) and min(h, w) < 1):
        raise ConfigError(f"TensorRT engines need an input (H, W) or (B, 3, H, W), got {tuple(input_shape)}")
    if max_batch < 1:
        raise ConfigError(f"max_batch must be >= 1, got {max_batch}")
    if (h, w) == (-1, -1):
        if hw_range is None or len(hw_range) != 3:
            raise ConfigError("a dynamic-shape graph needs hw_range = ((min H, W), (opt H, W), (max H, W))")
        low, opt, high = (tuple(int(v) for v in hw) for hw in hw_range)
        if not all(1 <= a <= b <= c for a, b, c in zip(low, opt, high)):
            raise ConfigError(f"hw_range must satisfy 1 <= min <= opt <= max per side, got {low}, {opt}, {high}")
    else:
        low = opt = high = (h, w)
    return ProfileShapes((1, 3, *low), (max(1, max_batch // 2), 3, *opt), (max_batch, 3, *high))


def engine_hw_range(preprocess: Preprocess) -> tuple[tuple[int, int], ...] | None:
    """The profile's (min, opt, max) (H, W) for a varying-shape record, None for a static one."""
    return None if preprocess.static_shape is not None else dynamic_input_range(preprocess)


def graph_flavor(precision: str) -> str:
    """The ONNX flavor the TensorRT exporter builds from: ``sdk::`` plugin nodes
    (``"tensorrt"``) for fp32/fp16; the standard-op graph (``"onnxruntime"``, which
    TensorRT parses too) for int8, because calibration runs the graph in ONNX Runtime,
    which cannot run the plugin nodes."""
    return "onnxruntime" if precision == "int8" else "tensorrt"


# ----------------------------------------------------------------------------- TensorRT
def build_engine(
    onnx_path: str | os.PathLike,
    engine_path: str | os.PathLike,
    *,
    max_batch: int,
    input_shape: Sequence[int],
    hw_range: Sequence[Sequence[int]] | None = None,
    workspace_gb: float = 4.0,
    timing_cache: str | os.PathLike | None = None,
    device: str = "cuda",
) -> tuple[Path, dict[str, str]]:
    """Build and serialize a TensorRT engine from an exported ONNX graph (any precision).

    Args:
        onnx_path: graph with input ``images`` [B, 3, H, W] and the contract outputs.
        engine_path: where to write the serialized engine.
        max_batch, input_shape, hw_range: the profile (``optimization_profile``).
        workspace_gb: builder workspace memory pool limit.
        timing_cache: file to load the timing cache from (when present) and save it to.
        device: the GPU to build for (``"cuda"`` / ``"cuda:N"``).

    Returns ``(engine path, build_target)`` (``sdk.runtime.tensorrt_api.build_target``).
    Raises ``BackendUnavailableError`` without TensorRT >= 10.10 / a GPU, ``ModelDirError``
    when the graph does not parse or the build fails.
    """
    from sdk.runtime.tensorrt_backend import check_tensorrt_available, current_target
    from sdk.trt_plugins.tensorrt_registration import plugins_of, register_plugins

    check_tensorrt_available(device)
    import tensorrt as trt

    check_tensorrt_version(trt.__version__)
    profile_shapes = optimization_profile(input_shape, max_batch, hw_range=hw_range)
    target = current_target(trt, device)
    # only graphs with sdk:: nodes need the plugins (and Triton to compile their kernels)
    aot = bool(plugins_of(onnx_path)) and register_plugins(arch=int(target["sm"].removeprefix("sm_")))
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, aot_plugins=aot))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelDirError(f"TensorRT cannot parse {onnx_path}: {errors[:600]}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    profile.set_shape(network.get_input(0).name, *profile_shapes)
    for index in range(1, network.num_inputs):  # a dynamic-shape graph's image_sizes [B, 2]
        profile.set_shape(network.get_input(index).name, *((shape[0], 2) for shape in profile_shapes))
    config.add_optimization_profile(profile)
    cache = _load_timing_cache(config, timing_cache)

    log.info("building a strongly typed TensorRT %s engine for %s from %s (profile %s)",
             trt.__version__, target["sm"], onnx_path, profile_shapes)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelDirError(f"TensorRT failed to build an engine from {onnx_path} (see the TensorRT log above)")
    if timing_cache is not None:
        Path(timing_cache).write_bytes(memoryview(cache.serialize()))
    out = Path(engine_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(memoryview(serialized))
    return out, target


def _load_timing_cache(config: Any, path: str | os.PathLike | None) -> Any:
    data = Path(path).read_bytes() if path is not None and Path(path).is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=False)
    return cache


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
    build_target: Mapping[str, str],
    precision_details: Mapping[str, Any] | None = None,
    source_checkpoint: str | os.PathLike | None = None,
) -> Path:
    """Package an engine as a model_dir: backend ``"tensorrt"``, the flavor and plugins of
    the ONNX graph it was built from (``sdk::BatchedNMS``, ...), batch 1..max_batch, and the
    ``build_target`` (TensorRT version, SM) the engine only runs on."""
    from sdk.converters.model_dir import write_model_dir
    from sdk.trt_plugins.tensorrt_registration import plugins_of

    static = preprocess.static_shape
    plugins = plugins_of(onnx_path)
    return write_model_dir(
        out_dir,
        model_file=engine_path,
        backend="tensorrt",
        flavor="tensorrt" if plugins else "onnxruntime",
        precision=precision,
        precision_details=precision_details,
        model_name=model_name,
        classes=classes,
        preprocess=preprocess,
        postprocess=postprocess,
        input_shape=static or (-1, -1),
        max_batch=max_batch,
        plugins=plugins,
        source_checkpoint=source_checkpoint,
        build_target=build_target,
        mask_size=_mask_size(onnx_path),
    )


def _mask_size(onnx_path: str | os.PathLike) -> int | None:
    """M of the graph's ``masks`` output [B, K, M, M] (instance segmentation), else None."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    for output in graph.output:
        if output.name == "masks":
            return int(output.type.tensor_type.shape.dim[-1].dim_value)
    return None


def export_checkpoint_tensorrt(model: Any, meta: Any, out_dir: Path, options: Any, checkpoint: Path) -> Path:
    """``sdk.converters.export.EXPORTERS["tensorrt"]``: eager model -> ONNX in
    ``options.precision`` (``export_precision_onnx``, flavor ``graph_flavor``) -> engine ->
    model_dir. Fails at once (before exporting anything) without TensorRT or a GPU."""
    import tempfile
    from dataclasses import replace

    from sdk.converters.export import export_precision_onnx
    from sdk.runtime.tensorrt_backend import check_tensorrt_available

    device = options.device or "cuda"
    check_tensorrt_available(device)
    options = replace(options, flavor=graph_flavor(options.precision))
    with tempfile.TemporaryDirectory(prefix="sdk-trt-") as tmp:
        onnx_path, details = export_precision_onnx(model, meta, Path(tmp), options)
        engine, target = build_engine(
            onnx_path, Path(tmp) / "model.engine", max_batch=options.max_batch,
            input_shape=meta.preprocess.static_shape or (-1, -1), hw_range=engine_hw_range(meta.preprocess),
            workspace_gb=options.workspace_gb,
            timing_cache=options.timing_cache, device=device,
        )
        return write_tensorrt_model_dir(
            engine, out_dir, onnx_path=onnx_path, precision=options.precision, precision_details=details,
            model_name=meta.model_name, classes=meta.classes, preprocess=meta.preprocess,
            postprocess=meta.postprocess, max_batch=options.max_batch, build_target=target,
            source_checkpoint=checkpoint,
        )
