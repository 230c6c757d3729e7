"""The SDK's custom ops as TensorRT plugins with ahead-of-time kernels (``tensorrt.plugin``).

The TensorRT-flavor ONNX graph has one node per op in domain ``sdk``
(``sdk::BatchedNMS`` over the graph's pre-NMS TopK candidates, ``sdk::MultiLevelRoIAlign``
over four feature maps; version 1, see ``sdk/trt_plugins/*/README.md``). TensorRT >=
10.10's ONNX parser turns a node into the plugin registered under ``"<domain>::<op
type>"``, so ``register_plugins(arch=...)`` must run before parsing (build time only).

What is registered per op:
- ``@trtp.register``: output descriptors, the contract shapes computed by the pure
  functions below from the input shapes and attributes (testable without TensorRT);
- ``@trtp.autotune``: the I/O types the kernels take (NMS float32, RoIAlign maps float32
  or float16), which the strongly typed graph already has (its explicit casts);
- ``@trtp.aot_impl``: the op's single Triton kernel compiled to PTX for the engine's SM
  with the node's attributes as compile-time constants
  (``sdk.trt_plugins.*.{single_launch,triton_kernel}.compile_aot``), its launch
  parameters (grid from shape expressions, block and shared memory from the compiled
  kernel) and its int32 arguments as shape expressions (``nms_launch`` /
  ``roi_align_launch``). TensorRT stores the PTX in the engine: running it needs no
  Python, torch or Triton (``trtexec``, Triton Inference Server, C++).

There is no ``@trtp.impl``: one implementation per op, and no choice left to TensorRT.
"""

# No ``from __future__ import annotations``: ``tensorrt.plugin`` reads the decorated
# functions' annotations as live objects (TensorDesc, numpy array types).
import threading
from dataclasses import dataclass
from typing import Any, Sequence, Tuple

import numpy as np

NMS_PLUGIN = "sdk::BatchedNMS"
ROI_ALIGN_PLUGIN = "sdk::MultiLevelRoIAlign"
PLUGIN_DOMAIN = "sdk"
NMS_OUTPUTS = ("num_dets", "det_boxes", "det_scores", "det_labels")

_lock = threading.Lock()
_registered = False
_arch = 90  # the SM the aot_impl functions compile for (register_plugins sets it)


@dataclass(frozen=True)
class PluginNode:
    """One ``sdk::`` node of an ONNX graph: ``plugin`` (``"sdk::BatchedNMS"``), its node
    ``name``, input / output tensor names and decoded ``attributes`` (ints, floats,
    lists of them)."""

    plugin: str
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attributes: dict[str, Any]


@dataclass(frozen=True)
class OutputDesc:
    """A plugin output: ``dtype`` (numpy name) and ``shape`` (ints, or whatever dimension
    objects the caller passed in, e.g. TensorRT ``ShapeExpr``)."""

    name: str
    dtype: str
    shape: tuple


def plugin_nodes(onnx_model: Any) -> list[PluginNode]:
    """The ``sdk::`` nodes of an ONNX model (``onnx.ModelProto`` or a path), in graph order."""
    import onnx
    from onnx import helper

    if not isinstance(onnx_model, onnx.ModelProto):
        onnx_model = onnx.load(str(onnx_model), load_external_data=False)
    nodes = []
    for node in onnx_model.graph.node:
        if node.domain != PLUGIN_DOMAIN:
            continue
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}  # INTS/FLOATS -> lists
        nodes.append(
            PluginNode(f"{node.domain}::{node.op_type}", node.name, tuple(node.input), tuple(node.output), attributes)
        )
    return nodes


def plugins_of(onnx_model: Any) -> list[str]:
    """Distinct plugin names (``"sdk::BatchedNMS"``, ...) the graph needs, in first-use order."""
    return list(dict.fromkeys(n.plugin for n in plugin_nodes(onnx_model)))


def batched_nms_outputs(batch: Any, max_det: int) -> tuple[OutputDesc, ...]:
    """``sdk::BatchedNMS`` outputs for inputs of batch size ``batch`` (contract 2):
    ``num_dets`` int32 [B, 1], ``det_boxes`` float32 [B, K, 4], ``det_scores`` float32
    [B, K], ``det_labels`` int32 [B, K] with K = ``max_det``."""
    k = int(max_det)
    if k < 1:
        raise ValueError(f"sdk::BatchedNMS needs max_det >= 1, got {max_det}")
    shapes = ((batch, 1), (batch, k, 4), (batch, k), (batch, k))
    dtypes = ("int32", "float32", "float32", "int32")
    return tuple(OutputDesc(n, d, s) for n, d, s in zip(NMS_OUTPUTS, dtypes, shapes))


def multilevel_roi_align_output(
    rois_shape: Sequence[Any], channels: Any, output_size: Sequence[int], dtype: str
) -> OutputDesc:
    """``sdk::MultiLevelRoIAlign`` output ``pooled`` [B, R, C, oh, ow] in the features' dtype,
    for ``rois`` [B, R, 4] and features with C channels."""
    if len(rois_shape) != 3 or len(output_size) != 2:
        raise ValueError(f"need rois [B, R, 4] and output_size (oh, ow), got {rois_shape}, {output_size}")
    oh, ow = (int(v) for v in output_size)
    return OutputDesc("pooled", dtype, (rois_shape[0], rois_shape[1], channels, oh, ow))


@dataclass(frozen=True)
class Launch:
    """One kernel launch as TensorRT's AOT plugin takes it: ``grid`` (x, y, z) and the
    int32 ``scalars`` between inputs and outputs, in the kernel's order. Entries are ints
    or whatever dimension objects the caller passed (TensorRT shape expressions)."""

    grid: tuple
    scalars: tuple


def nms_launch(batch: Any, num_cand: Any) -> Launch:
    """``sdk::BatchedNMS``: one program per image; the scalar is M (candidates per image)."""
    return Launch((batch, 1, 1), (num_cand,))


def roi_align_launch(rois_shape: Sequence[Any], feature_shapes: Sequence[Sequence[Any]], block_c: int,
                     cdiv: Any = None) -> Launch:
    """``sdk::MultiLevelRoIAlign``: programs (B * R, ceil(C / block_c)); scalars R, C, then
    (H_l, W_l) of each map. ``cdiv``: ceil-division for the caller's dimension objects."""
    batch, rois = rois_shape[0], rois_shape[1]
    channels = feature_shapes[0][1]
    blocks = cdiv(channels, block_c) if cdiv else -(-channels // block_c)
    sizes = tuple(d for shape in feature_shapes for d in (shape[2], shape[3]))
    return Launch((batch * rois, blocks, 1), (rois, channels, *sizes))


def constant(dim: Any, what: str) -> int:
    """The int value of a dimension that must be static (an int or a constant shape expression)."""
    if isinstance(dim, int):
        return dim
    if getattr(dim, "is_constant", False):
        return int(dim.constant_value)
    raise ValueError(f"{what} must be static to compile the plugin's kernel, got {dim!r}")


# ----------------------------------------------------------------------------- TensorRT
def register_plugins(*, arch: int) -> bool:
    """Register both plugins with ``tensorrt.plugin`` for an engine built for ``sm_<arch>``
    (once per process, thread-safe; a later call only changes the SM). Returns ``True``:
    the plugins are ahead-of-time implementations (the network prefers them).

    Raises ``BackendUnavailableError`` when ``tensorrt.plugin`` or Triton is missing.
    """
    global _registered, _arch
    with _lock:
        _arch = int(arch)
        if _registered:
            return True
        from sdk.errors import require

        trtp = require("tensorrt.plugin", extra="tensorrt", purpose="The SDK's TensorRT plugins (TensorRT >= 10.10)")
        trt = require("tensorrt", extra="tensorrt", purpose="The SDK's TensorRT plugins")
        require("triton", extra="export", purpose="Compiling the SDK's TensorRT plugin kernels")
        _register_batched_nms(trtp, trt)
        _register_multilevel_roi_align(trtp, trt)
        _registered = True
        return True


def _trt_dtype(trt: Any, name: str) -> Any:
    return {"int32": trt.int32, "float32": trt.float32, "float16": trt.float16}[name]


def _aot_result(trtp: Any, kernel: Any, launch: Launch) -> tuple:
    """``(kernel name, PTX, KernelLaunchParams, SymIntExprs)`` as ``@trtp.aot_impl`` returns them."""
    params = trtp.KernelLaunchParams()
    params.grid_x, params.grid_y, params.grid_z = launch.grid
    params.block_x = kernel.block_threads
    params.shared_mem = kernel.shared_mem
    scalars = trtp.SymIntExprs(len(launch.scalars))
    for i, dim in enumerate(launch.scalars):
        scalars[i] = trtp.SymInt32(dim)
    return kernel.name, kernel.ptx, params, scalars


def _register_batched_nms(trtp: Any, trt: Any) -> None:
    from sdk.trt_plugins.batched_nms.single_launch import compile_aot

    @trtp.register(NMS_PLUGIN)
    def _desc(boxes: trtp.TensorDesc, scores: trtp.TensorDesc, labels: trtp.TensorDesc, score_threshold: float,
              iou_threshold: float, max_det: int, class_agnostic: int,
              ) -> Tuple[trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc]:
        outputs = batched_nms_outputs(scores.shape_expr[0], max_det)
        return tuple(trtp.from_shape_expr(o.shape, dtype=_trt_dtype(trt, o.dtype)) for o in outputs)

    @trtp.autotune(NMS_PLUGIN)
    def _autotune(boxes: trtp.TensorDesc, scores: trtp.TensorDesc, labels: trtp.TensorDesc, outputs):
        return [trtp.AutoTuneCombination("FP32, FP32, INT32, INT32, FP32, FP32, INT32", "LINEAR")]

    @trtp.aot_impl(NMS_PLUGIN)
    def _aot(boxes: trtp.TensorDesc, scores: trtp.TensorDesc, labels: trtp.TensorDesc, score_threshold: float,
             iou_threshold: float, max_det: int, class_agnostic: int, outputs, tactic: int):
        num_cand = constant(scores.shape_expr[1], "the number of NMS candidates (the graph's TopK k)")
        kernel = compile_aot(arch=_arch, num_cand=num_cand, score_threshold=score_threshold,
                             iou_threshold=iou_threshold, max_det=max_det, class_agnostic=bool(class_agnostic))
        return _aot_result(trtp, kernel, nms_launch(scores.shape_expr[0], scores.shape_expr[1]))


def _register_multilevel_roi_align(trtp: Any, trt: Any) -> None:
    import numpy.typing as npt

    from sdk.trt_plugins.multilevel_roi_align.triton_kernel import BLOCK_C, compile_aot

    # The ONNX node has exactly four maps (the lowering pads fewer with the first one;
    # spatial_scales gives the real count): QDP signatures are fixed.
    @trtp.register(ROI_ALIGN_PLUGIN)
    def _desc(rois: trtp.TensorDesc, f0: trtp.TensorDesc, f1: trtp.TensorDesc, f2: trtp.TensorDesc,
              f3: trtp.TensorDesc, output_size: npt.NDArray[np.int32], sampling_ratio: int, aligned: int,
              spatial_scales: npt.NDArray[np.float32], canonical_scale: int, canonical_level: int,
              ) -> trtp.TensorDesc:
        out = multilevel_roi_align_output(
            (rois.shape_expr[0], rois.shape_expr[1], 4), f0.shape_expr[1], list(output_size), "float32"
        )
        return trtp.from_shape_expr(out.shape, dtype=f0.dtype)

    @trtp.autotune(ROI_ALIGN_PLUGIN)
    def _autotune(rois: trtp.TensorDesc, f0: trtp.TensorDesc, f1: trtp.TensorDesc, f2: trtp.TensorDesc,
                  f3: trtp.TensorDesc, outputs):
        return [trtp.AutoTuneCombination("FP32, FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16", "LINEAR")]

    @trtp.aot_impl(ROI_ALIGN_PLUGIN)
    def _aot(rois: trtp.TensorDesc, f0: trtp.TensorDesc, f1: trtp.TensorDesc, f2: trtp.TensorDesc,
             f3: trtp.TensorDesc, output_size: npt.NDArray[np.int32], sampling_ratio: int, aligned: int,
             spatial_scales: npt.NDArray[np.float32], canonical_scale: int, canonical_level: int, outputs,
             tactic: int):
        kernel = compile_aot(
            arch=_arch, dtype="fp16" if f0.dtype == trt.float16 else "fp32", output_size=list(output_size),
            sampling_ratio=int(sampling_ratio), aligned=bool(aligned), spatial_scales=list(spatial_scales),
            canonical_scale=int(canonical_scale), canonical_level=int(canonical_level),
        )
        shapes = [f.shape_expr for f in (f0, f1, f2, f3)]
        return _aot_result(trtp, kernel, roi_align_launch(rois.shape_expr, shapes, BLOCK_C, cdiv=trtp.cdiv))
