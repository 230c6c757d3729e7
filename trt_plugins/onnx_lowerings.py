"""ONNX lowerings of the ``sdk::`` custom ops, keyed by flavor and opset.

Usage::

    import sdk.trt_plugins  # registers torch.ops.sdk.*
    from sdk.trt_plugins.onnx_lowerings import translation_table

    torch.onnx.export(model, args, dynamo=True, opset_version=18,
                      custom_translation_table=translation_table("onnxruntime", 18))

Flavors:

* ``"onnxruntime"``: standard ONNX ops only, batch-native (no per-image loop), runs in
  stock ONNX Runtime. NMS: ``NonMaxSuppression`` (per class on shared boxes, or one
  class on class-offset boxes), a kept-mask scatter and ``TopK(max_det)`` per batch
  row. RoIAlign: the FPN level rule in ``Sqrt/Log/Floor/Clip``, one ``RoiAlign``
  (opset >= 16, ``coordinate_transformation_mode``) per level over all RoIs, merged
  with ``Where``.
* ``"tensorrt"``: one node per op in domain ``sdk`` (``sdk::BatchedNMS``,
  ``sdk::MultiLevelRoIAlign``, version 1) that TensorRT maps to the SDK plugins and
  ``sdk.trt_plugins.ort_ops`` runs in ONNX Runtime. Node attributes are listed in
  ``NMS_ATTRIBUTES`` / ``ROI_ALIGN_ATTRIBUTES`` and the op READMEs.

The functions run in the exporter's trace mode: inputs are ``ir.Value``-like symbolic
tensors with known dtype and shape (only the batch dimension may be symbolic).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
import onnx
import torch
from onnx.defs import OpSchema
from onnxscript import ir
from onnxscript.values import Op, Opset

from . import batched_nms as _nms_pkg  # noqa: F401  (registers torch.ops.sdk.batched_nms)
from . import multilevel_roi_align as _roi_pkg  # noqa: F401  (registers torch.ops.sdk.multilevel_roi_align)
from .multilevel_roi_align.reference import level_range

FLAVORS = ("onnxruntime", "tensorrt")
MIN_OPSET = 17
DEFAULT_OPSET = 18
SDK_DOMAIN = "sdk"
SDK_DOMAIN_VERSION = 1

#: attribute name -> ONNX attribute type of ``sdk::BatchedNMS`` (bools stored as 0/1 ints).
NMS_ATTRIBUTES = {
    "score_threshold": OpSchema.AttrType.FLOAT,
    "iou_threshold": OpSchema.AttrType.FLOAT,
    "max_det": OpSchema.AttrType.INT,
    "pre_nms_top_k": OpSchema.AttrType.INT,
    "class_agnostic": OpSchema.AttrType.INT,
}
#: attribute name -> ONNX attribute type of ``sdk::MultiLevelRoIAlign``.
ROI_ALIGN_ATTRIBUTES = {
    "output_size": OpSchema.AttrType.INTS,
    "sampling_ratio": OpSchema.AttrType.INT,
    "aligned": OpSchema.AttrType.INT,
    "spatial_scales": OpSchema.AttrType.FLOATS,
    "canonical_scale": OpSchema.AttrType.INT,
    "canonical_level": OpSchema.AttrType.INT,
}


def _sdk_op(name: str, inputs: list, outputs: list, attributes: dict) -> Op:
    """An onnxscript ``Op`` for a node in domain ``sdk`` (schema only used while exporting)."""
    schema = OpSchema(
        name,
        SDK_DOMAIN,
        SDK_DOMAIN_VERSION,
        inputs=inputs,
        outputs=outputs,
        type_constraints=[("T", ["tensor(float)", "tensor(float16)"], "floating point inputs")],
        attributes=[OpSchema.Attribute(key, kind) for key, kind in attributes.items()],
    )
    return Op(Opset(SDK_DOMAIN, SDK_DOMAIN_VERSION), name, schema)


_Param = OpSchema.FormalParameter
_BATCHED_NMS = _sdk_op(
    "BatchedNMS",
    [_Param("boxes", "T"), _Param("scores", "T")],
    [
        _Param("num_dets", "tensor(int32)"),
        _Param("det_boxes", "tensor(float)"),
        _Param("det_scores", "tensor(float)"),
        _Param("det_labels", "tensor(int32)"),
    ],
    NMS_ATTRIBUTES,
)
# One variadic input (rois, features_0 ... features_{L-1}): torch's recorder only binds a
# variadic parameter correctly when it is the first one.
_MULTILEVEL_ROI_ALIGN = _sdk_op(
    "MultiLevelRoIAlign",
    [_Param("inputs", "T", param_option=OpSchema.FormalParameterOption.Variadic)],
    [_Param("pooled", "T")],
    ROI_ALIGN_ATTRIBUTES,
)


# --------------------------------------------------------------------------- tensorrt
def _batched_nms_tensorrt(
    boxes, scores, score_threshold: float, iou_threshold: float, max_det: int,
    pre_nms_top_k: int = -1, class_agnostic: bool = False,
):
    return _BATCHED_NMS(
        boxes,
        scores,
        score_threshold=float(score_threshold),
        iou_threshold=float(iou_threshold),
        max_det=int(max_det),
        pre_nms_top_k=int(pre_nms_top_k),
        class_agnostic=int(bool(class_agnostic)),
    )


def _multilevel_roi_align_tensorrt(
    rois, features, output_size, sampling_ratio: int, aligned: bool, spatial_scales,
    canonical_scale: int = 224, canonical_level: int = 4,
):
    level_range(spatial_scales)  # fail at export time, not inside TensorRT
    return _MULTILEVEL_ROI_ALIGN(
        rois,
        *features,
        output_size=[int(v) for v in output_size],
        sampling_ratio=int(sampling_ratio),
        aligned=int(bool(aligned)),
        spatial_scales=[float(v) for v in spatial_scales],
        canonical_scale=int(canonical_scale),
        canonical_level=int(canonical_level),
    )


# ------------------------------------------------------------------------ onnxruntime
def _static_dims(value, what: str, dims: range) -> list[int]:
    shape = [value.shape[i] for i in dims]
    if not all(isinstance(d, int) for d in shape):
        raise ValueError(f"{what} needs static dims {list(dims)} for the ONNX lowering, got shape {value.shape}")
    return shape


def _onnxruntime_lowerings(opset: int) -> tuple[Callable, Callable]:
    op = Opset("", opset)

    def const(values, dtype) -> object:
        return op.Constant(value=ir.tensor(np.asarray(values, dtype=dtype)))

    def columns(x, count: int) -> list:
        """x [S, count] -> ``count`` columns [S, 1] (Slice: same in every opset >= 13)."""
        return [op.Slice(x, const([i], np.int64), const([i + 1], np.int64), const([1], np.int64)) for i in range(count)]

    def gather_rows(table, rows):
        """table [B, T, 4], rows int64 [B, K] -> [B, K, 4]."""
        return op.GatherND(table, op.Unsqueeze(rows, const([-1], np.int64)), batch_dims=1)

    def batched_nms(
        boxes, scores, score_threshold: float, iou_threshold: float, max_det: int,
        pre_nms_top_k: int = -1, class_agnostic: bool = False,
    ):
        num, num_classes = _static_dims(scores, "sdk::batched_nms scores", range(1, 3))
        total = num * num_classes
        per_class_boxes = len(boxes.shape) == 4
        float_t = onnx.TensorProto.FLOAT
        boxes, scores = op.Cast(boxes, to=float_t), op.Cast(scores, to=float_t)
        flat_scores = op.Reshape(scores, const([0, total], np.int64))  # [B, N*C], index n*C + c
        top_k = pre_nms_top_k if 0 < pre_nms_top_k < total else 0
        nms_args = (const([iou_threshold], np.float32), const([score_threshold], np.float32))
        neg_inf = const(-np.inf, np.float32)

        if not class_agnostic and not per_class_boxes:
            # Native per-class NMS on the shared boxes: exact IoUs, no box copies.
            space, space_to_flat = flat_scores, None
            if top_k:
                values, indices = op.TopK(flat_scores, const([top_k], np.int64), axis=1)
                space = op.ScatterElements(op.Expand(neg_inf, op.Shape(flat_scores)), indices, values, axis=1)
            class_scores = op.Transpose(op.Reshape(space, const([0, num, num_classes], np.int64)), perm=[0, 2, 1])
            selected = op.NonMaxSuppression(boxes, class_scores, const([num], np.int64), *nms_args)
            batch_idx, cls, anchor = columns(selected, 3)
            kept_pos = op.Add(op.Mul(anchor, const(num_classes, np.int64)), cls)
        else:
            # One NMS class over candidates; per-class NMS via class-offset boxes.
            if top_k:
                space, space_to_flat = op.TopK(flat_scores, const([top_k], np.int64), axis=1)
                flat = space_to_flat
            else:
                space, space_to_flat = flat_scores, None
                flat = op.Unsqueeze(op.Range(const(0, np.int64), const(total, np.int64), const(1, np.int64)), const([0], np.int64))
            if per_class_boxes:
                cand_boxes = op.Reshape(boxes, const([0, total, 4], np.int64))
                if top_k:
                    cand_boxes = gather_rows(cand_boxes, flat)
            elif top_k:
                cand_boxes = gather_rows(boxes, op.Div(flat, const(num_classes, np.int64)))
            else:
                expanded = op.Expand(op.Unsqueeze(boxes, const([2], np.int64)), const([1, 1, num_classes, 1], np.int64))
                cand_boxes = op.Reshape(expanded, const([0, total, 4], np.int64))
            if not class_agnostic:
                # offset > coordinate range separates classes (torchvision's coordinate trick)
                span = op.Add(op.Sub(op.ReduceMax(boxes, keepdims=0), op.ReduceMin(boxes, keepdims=0)), const(1.0, np.float32))
                labels = op.Cast(op.Mod(flat, const(num_classes, np.int64)), to=float_t)
                cand_boxes = op.Add(cand_boxes, op.Unsqueeze(op.Mul(labels, span), const([-1], np.int64)))
            max_out = const([top_k or total], np.int64)
            selected = op.NonMaxSuppression(cand_boxes, op.Unsqueeze(space, const([1], np.int64)), max_out, *nms_args)
            batch_idx, _, kept_pos = columns(selected, 3)

        # kept mask over the candidate space, then the best max_det kept per image
        kept = op.ScatterND(
            op.Expand(const(False, np.bool_), op.Shape(space)),
            op.Concat(batch_idx, kept_pos, axis=1),
            op.Expand(const([True], np.bool_), op.Shape(batch_idx, start=0, end=1)),
        )
        width = top_k or total
        k = min(max_det, width)
        ranked = op.Where(kept, space, neg_inf)
        top_scores, top_pos = op.TopK(ranked, const([k], np.int64), axis=1)
        count = op.Min(op.ReduceSum(op.Cast(kept, to=onnx.TensorProto.INT64), const([1], np.int64), keepdims=1), const(k, np.int64))
        valid = op.Less(op.Range(const(0, np.int64), const(k, np.int64), const(1, np.int64)), count)  # [B, k]
        flat_idx = top_pos if space_to_flat is None else op.GatherElements(space_to_flat, top_pos, axis=1)
        if per_class_boxes:
            det_boxes = gather_rows(op.Reshape(boxes, const([0, total, 4], np.int64)), flat_idx)
        else:
            det_boxes = gather_rows(boxes, op.Div(flat_idx, const(num_classes, np.int64)))
        zero_f = const(0.0, np.float32)
        det_boxes = op.Where(op.Unsqueeze(valid, const([-1], np.int64)), det_boxes, zero_f)
        det_scores = op.Where(valid, top_scores, zero_f)
        det_labels = op.Where(valid, op.Cast(op.Mod(flat_idx, const(num_classes, np.int64)), to=onnx.TensorProto.INT32), const(0, np.int32))
        if k < max_det:  # fewer candidates than output rows: zero-pad to K
            det_boxes = op.Pad(det_boxes, const([0, 0, 0, 0, max_det - k, 0], np.int64))
            det_scores = op.Pad(det_scores, const([0, 0, 0, max_det - k], np.int64))
            det_labels = op.Pad(det_labels, const([0, 0, 0, max_det - k], np.int64))
        return op.Cast(count, to=onnx.TensorProto.INT32), det_boxes, det_scores, det_labels

    def multilevel_roi_align(
        rois, features, output_size, sampling_ratio: int, aligned: bool, spatial_scales,
        canonical_scale: int = 224, canonical_level: int = 4,
    ):
        k_min, k_max = level_range(spatial_scales)
        float_t = onnx.TensorProto.FLOAT
        out_type = features[0].dtype
        flat_rois = op.Reshape(op.Cast(rois, to=float_t), const([-1, 4], np.int64))  # [B*R, 4]
        # batch index of each RoI: cumulative sum of ones down the batch axis
        ones = op.ConstantOfShape(op.Shape(rois, start=0, end=2), value=ir.tensor(np.array([1], np.int64)))
        batch_idx = op.Reshape(op.Sub(op.CumSum(ones, const(0, np.int64)), ones), const([-1], np.int64))
        # torchvision LevelMapper: floor(lvl0 + log2(sqrt(area) / s0) + eps), clamped
        x1, y1, x2, y2 = columns(flat_rois, 4)
        size = op.Sqrt(op.Mul(op.Sub(x2, x1), op.Sub(y2, y1)))
        log2 = op.Div(op.Log(op.Div(size, const(float(canonical_scale), np.float32))), const(math.log(2.0), np.float32))
        level = op.Floor(op.Add(op.Add(log2, const(float(canonical_level), np.float32)), const(1e-6, np.float32)))
        level = op.Clip(level, const(float(k_min), np.float32), const(float(k_max), np.float32))
        level = op.Reshape(op.Sub(level, const(float(k_min), np.float32)), const([-1, 1, 1, 1], np.int64))
        mode = "half_pixel" if aligned else "output_half_pixel"
        pooled = None
        for index in reversed(range(len(features))):
            per_level = op.RoiAlign(
                op.Cast(features[index], to=float_t),
                flat_rois,
                batch_idx,
                coordinate_transformation_mode=mode,
                mode="avg",
                output_height=int(output_size[0]),
                output_width=int(output_size[1]),
                sampling_ratio=max(int(sampling_ratio), 0),
                spatial_scale=float(spatial_scales[index]),
            )
            if pooled is None:
                pooled = per_level  # every level index is in range after Clip
            else:
                pooled = op.Where(op.Equal(level, const(float(index), np.float32)), per_level, pooled)
        out_shape = op.Concat(op.Shape(rois, start=0, end=2), op.Shape(pooled, start=1), axis=0)
        return op.Cast(op.Reshape(pooled, out_shape), to=_onnx_dtype(out_type))

    return batched_nms, multilevel_roi_align


def _onnx_dtype(dtype) -> int:
    """An exporter/IR dtype (``ir.DataType``) as the ``TensorProto`` enum ``Cast`` takes."""
    return int(dtype)


def translation_table(flavor: str, opset: int = DEFAULT_OPSET) -> dict:
    """``custom_translation_table`` for ``torch.onnx.export(..., dynamo=True)``.

    Args:
        flavor: ``"onnxruntime"`` (standard ops) or ``"tensorrt"`` (``sdk::`` nodes).
        opset: the default-domain opset the model is exported with (>= 17).

    Returns:
        ``{torch.ops.sdk.batched_nms.default: fn, torch.ops.sdk.multilevel_roi_align.default: fn}``.
    """
    if flavor not in FLAVORS:
        raise ValueError(f"unknown ONNX flavor {flavor!r}; choose one of {FLAVORS}")
    if opset < MIN_OPSET:
        raise ValueError(f"the sdk ONNX lowerings need opset >= {MIN_OPSET}, got {opset}")
    if flavor == "tensorrt":
        nms, roi_align = _batched_nms_tensorrt, _multilevel_roi_align_tensorrt
    else:
        nms, roi_align = _onnxruntime_lowerings(opset)
    return {
        torch.ops.sdk.batched_nms.default: nms,
        torch.ops.sdk.multilevel_roi_align.default: roi_align,
    }
