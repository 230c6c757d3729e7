"""The SDK's custom ops as TensorRT plugins (``tensorrt.plugin``, TensorRT >= 10.7).

The TensorRT-flavor ONNX graph has one node per op in domain ``sdk``
(``sdk::BatchedNMS``, ``sdk::MultiLevelRoIAlign``, version 1; see
``sdk/trt_plugins/*/README.md``). TensorRT >= 10.10's ONNX parser turns a node into
the plugin registered under ``"<domain>::<op type>"``, so ``register_plugins()``
must run before parsing (build) and before deserializing an engine (run).

What is registered per op:
- ``@trtp.register``: output descriptors, the contract shapes computed by the pure
  functions below from the input shapes and attributes (testable without TensorRT);
- ``@trtp.autotune``: float32 inputs only, so an ``--fp16`` build keeps NMS boxes,
  scores and RoI coordinates in float32 (the builder inserts the casts);
- ``@trtp.impl``: runs the PyTorch op (the Triton CUDA kernels) on TensorRT's stream.
  Such an engine needs Python, torch and this module at run time.

No ``@trtp.aot_impl`` yet: an AOT plugin is ONE kernel launch with the calling
convention (inputs..., scalar args..., outputs...) and no workspace, while the SDK's
kernels are pipelines (NMS: threshold + stable sort in torch, an IoU-mask kernel, a
host sync sizing the mask, a greedy kernel; RoIAlign: level assignment in torch, then
one kernel whose first argument is the output). ``aot_kernel_sources()`` compiles the
kernels' PTX (``sdk.trt_plugins._triton_aot``) so the gap is only the single-launch
entry points, listed in the report for the ops owners.
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


def aot_kernel_sources(*, arch: int) -> dict[str, str]:
    """``{kernel name: PTX}`` of the ops' Triton kernels for ``sm_<arch>`` (no GPU needed);
    what an ``@trtp.aot_impl`` will return once single-launch entry points exist."""
    from sdk.trt_plugins.batched_nms.triton_kernel import compile_kernels as nms_kernels
    from sdk.trt_plugins.multilevel_roi_align.triton_kernel import compile_kernels as roi_kernels

    return {name: k.asm["ptx"] for name, k in {**nms_kernels(arch=arch), **roi_kernels(arch=arch)}.items()}


# ----------------------------------------------------------------------------- TensorRT
def register_plugins() -> None:
    """Register both plugins with ``tensorrt.plugin`` (once per process; thread-safe).

    Raises ``BackendUnavailableError`` when ``tensorrt.plugin`` (TensorRT >= 10.7) or
    torch is missing.
    """
    global _registered
    with _lock:
        if _registered:
            return
        from sdk.errors import require

        trtp = require("tensorrt.plugin", extra="tensorrt", purpose="The SDK's TensorRT plugins (TensorRT >= 10.7)")
        trt = require("tensorrt", extra="tensorrt", purpose="The SDK's TensorRT plugins")
        require("torch", extra="torch", purpose="The SDK's TensorRT plugin implementations")
        _register_batched_nms(trtp, trt)
        _register_multilevel_roi_align(trtp, trt)
        _registered = True


def _trt_dtype(trt: Any, name: str) -> Any:
    return {"int32": trt.int32, "float32": trt.float32, "float16": trt.float16}[name]


def _register_batched_nms(trtp: Any, trt: Any) -> None:
    import torch

    import sdk.trt_plugins  # noqa: F401  (torch.ops.sdk.batched_nms)

    @trtp.register(NMS_PLUGIN)
    def _desc(boxes: trtp.TensorDesc, scores: trtp.TensorDesc, score_threshold: float, iou_threshold: float,
              max_det: int, pre_nms_top_k: int, class_agnostic: int,
              ) -> Tuple[trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc, trtp.TensorDesc]:
        outputs = batched_nms_outputs(scores.shape_expr[0], max_det)
        return tuple(trtp.from_shape_expr(o.shape, dtype=_trt_dtype(trt, o.dtype)) for o in outputs)

    @trtp.autotune(NMS_PLUGIN)
    def _autotune(boxes: trtp.TensorDesc, scores: trtp.TensorDesc, outputs):
        # float32 in (the builder casts fp16 producers), contract dtypes out, linear layout
        return [trtp.AutoTuneCombination("FP32, FP32, INT32, FP32, FP32, INT32", "LINEAR")]

    @trtp.impl(NMS_PLUGIN)
    def _impl(boxes: trtp.Tensor, scores: trtp.Tensor, score_threshold: float, iou_threshold: float,
              max_det: int, pre_nms_top_k: int, class_agnostic: int, outputs, stream: int) -> None:
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            results = torch.ops.sdk.batched_nms(
                torch.as_tensor(boxes, device="cuda"), torch.as_tensor(scores, device="cuda"),
                float(score_threshold), float(iou_threshold), int(max_det), int(pre_nms_top_k), bool(class_agnostic),
            )
            for out, result in zip(outputs, results):
                torch.as_tensor(out, device="cuda").copy_(result)


def _register_multilevel_roi_align(trtp: Any, trt: Any) -> None:
    import numpy.typing as npt
    import torch

    import sdk.trt_plugins  # noqa: F401  (torch.ops.sdk.multilevel_roi_align)

    # The ONNX node has a variadic input list (rois, P2..P5); QDP signatures are fixed,
    # so the plugin is declared for the four FPN levels every SDK two-stage model uses.
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
    def _autotune(rois, f0, f1, f2, f3, outputs):
        return [trtp.AutoTuneCombination("FP32, FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16, FP32|FP16", "LINEAR")]

    @trtp.impl(ROI_ALIGN_PLUGIN)
    def _impl(rois: trtp.Tensor, f0: trtp.Tensor, f1: trtp.Tensor, f2: trtp.Tensor, f3: trtp.Tensor,
              output_size: npt.NDArray[np.int32], sampling_ratio: int, aligned: int,
              spatial_scales: npt.NDArray[np.float32], canonical_scale: int, canonical_level: int,
              outputs, stream: int) -> None:
        with torch.cuda.stream(torch.cuda.ExternalStream(stream)):
            features = [torch.as_tensor(f, device="cuda") for f in (f0, f1, f2, f3)]
            pooled = torch.ops.sdk.multilevel_roi_align(
                torch.as_tensor(rois, device="cuda"), features, [int(v) for v in output_size], int(sampling_ratio),
                bool(aligned), [float(v) for v in spatial_scales], int(canonical_scale), int(canonical_level),
            )
            torch.as_tensor(outputs[0], device="cuda").copy_(pooled)

