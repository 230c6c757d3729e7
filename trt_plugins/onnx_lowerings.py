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
  (opset >= 16, ``coordinate_transformation_mode``) per level over that level's RoIs
  (``NonZero``/``Gather``), scattered back into place (``ScatterND``).
* ``"tensorrt"``: one node per op in domain ``sdk`` (``sdk::BatchedNMS``,
  ``sdk::MultiLevelRoIAlign``, version 1) that TensorRT maps to the SDK plugins and
  ``sdk.trt_plugins.ort_ops`` runs in ONNX Runtime; each plugin is one kernel launch, so
  NMS's pre-NMS top-k is a standard ``TopK`` in front of its node (capped at 4096
  candidates) and RoIAlign takes exactly ``ROI_ALIGN_MAPS`` feature maps. Node
  attributes are listed in ``NMS_ATTRIBUTES`` / ``ROI_ALIGN_ATTRIBUTES`` and the op READMEs.

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

from .multilevel_roi_align.reference import level_range

FLAVORS = ("onnxruntime", "tensorrt")
MIN_OPSET = 17
DEFAULT_OPSET = 18
SDK_DOMAIN = "sdk"
SDK_DOMAIN_VERSION = 1

#: attribute name -> ONNX attribute type of ``sdk::BatchedNMS`` (bools stored as 0/1 ints);
#: ``pre_nms_top_k`` is applied by the graph's TopK in front of the node.
NMS_ATTRIBUTES = {
    "score_threshold": OpSchema.AttrType.FLOAT,
    "iou_threshold": OpSchema.AttrType.FLOAT,
    "max_det": OpSchema.AttrType.INT,
    "class_agnostic": OpSchema.AttrType.INT,
}
#: feature-map inputs of ``sdk::MultiLevelRoIAlign`` (TensorRT plugins have fixed inputs:
#: fewer maps are padded with the first one, ``spatial_scales`` gives the real count)
ROI_ALIGN_MAPS = 4
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
    [_Param("boxes", "T"), _Param("scores", "T"), _Param("labels", "tensor(int32)")],
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
def _tensorrt_lowerings(opset: int) -> tuple[Callable, Callable]:
    op = Opset("", opset)

    def i64(values):
        return op.Constant(value=ir.tensor(np.asarray(values, dtype=np.int64)))

    def batched_nms(
        boxes, scores, score_threshold: float, iou_threshold: float, max_det: int,
        pre_nms_top_k: int = -1, class_agnostic: bool = False,
    ):
        """Pre-NMS top-k as a standard TopK (ties: lower flat index ``n * C + c``), then one
        ``sdk::BatchedNMS`` node over the M candidates: boxes float32 [B, M, 4], scores
        float32 [B, M] descending, labels int32 [B, M] (the plugin's single kernel)."""
        from .batched_nms.single_launch import candidate_count

        num, num_classes = _static_dims(scores, "sdk::batched_nms scores", range(1, 3))
        total, per_class_boxes = num * num_classes, len(boxes.shape) == 4
        flat = op.Reshape(op.Cast(scores, to=onnx.TensorProto.FLOAT), i64([0, total]))
        cand_scores, cand = op.TopK(flat, i64([candidate_count(num, num_classes, pre_nms_top_k)]), axis=1)
        boxes = op.Cast(boxes, to=onnx.TensorProto.FLOAT)
        table = op.Reshape(boxes, i64([0, total, 4])) if per_class_boxes else boxes
        rows = cand if per_class_boxes else op.Div(cand, i64(num_classes))
        cand_boxes = op.GatherND(table, op.Unsqueeze(rows, i64([-1])), batch_dims=1)
        labels = op.Cast(op.Mod(cand, i64(num_classes)), to=onnx.TensorProto.INT32)
        return _BATCHED_NMS(
            cand_boxes,
            cand_scores,
            labels,
            score_threshold=float(score_threshold),
            iou_threshold=float(iou_threshold),
            max_det=int(max_det),
            class_agnostic=int(bool(class_agnostic)),
        )

    def multilevel_roi_align(
        rois, features, output_size, sampling_ratio: int, aligned: bool, spatial_scales,
        canonical_scale: int = 224, canonical_level: int = 4,
    ):
        level_range(spatial_scales)  # fail at export time, not inside TensorRT
        if len(features) > ROI_ALIGN_MAPS:
            raise ValueError(f"the tensorrt flavor supports up to {ROI_ALIGN_MAPS} feature maps, got {len(features)}")
        maps = [*features, *[features[0]] * (ROI_ALIGN_MAPS - len(features))]
        return _MULTILEVEL_ROI_ALIGN(
            rois,
            *maps,
            output_size=[int(v) for v in output_size],
            sampling_ratio=int(sampling_ratio),
            aligned=int(bool(aligned)),
            spatial_scales=[float(v) for v in spatial_scales],
            canonical_scale=int(canonical_scale),
            canonical_level=int(canonical_level),
        )

    return batched_nms, multilevel_roi_align


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

    def i64(values):
        return const(values, np.int64)

    def native_per_class_nms(boxes, flat_scores, num: int, num_classes: int, top_k: int, nms_args: tuple):
        """NonMaxSuppression's own class axis on the shared boxes: exact IoUs, no box copies.

        Candidate space = the flat scores [B, N*C]; returns (space scores, batch index [S, 1],
        kept position [S, 1]).
        """
        space = flat_scores
        if top_k:  # drop all but the best top_k candidates (score -> -inf)
            values, indices = op.TopK(flat_scores, i64([top_k]), axis=1)
            dropped = op.Expand(const(-np.inf, np.float32), op.Shape(flat_scores))
            space = op.ScatterElements(dropped, indices, values, axis=1)
        class_scores = op.Transpose(op.Reshape(space, i64([0, num, num_classes])), perm=[0, 2, 1])  # [B, C, N]
        selected = op.NonMaxSuppression(boxes, class_scores, i64([num]), *nms_args)
        batch_idx, label, anchor = columns(selected, 3)
        return space, batch_idx, op.Add(op.Mul(anchor, i64(num_classes)), label)

    def single_class_nms(
        boxes, flat_scores, num_classes: int, total: int, per_class_boxes: bool, top_k: int, agnostic: bool,
        nms_args: tuple,
    ):
        """One NonMaxSuppression class over candidate boxes [B, M, 4]; classes kept apart by offsets.

        Candidate space = the best top_k candidates (or all N*C); returns (space scores,
        space -> flat index [B, M] or None when the space is the flat index, batch index [S, 1],
        kept position [S, 1]).
        """
        if top_k:
            space, space_to_flat = op.TopK(flat_scores, i64([top_k]), axis=1)
            flat = space_to_flat
        else:
            space, space_to_flat = flat_scores, None
            flat = op.Unsqueeze(op.Range(i64(0), i64(total), i64(1)), i64([0]))  # [1, N*C]
        if per_class_boxes:  # one box per (n, c)
            cand_boxes = op.Reshape(boxes, i64([0, total, 4]))
            if top_k:
                cand_boxes = gather_rows(cand_boxes, flat)
        elif top_k:
            cand_boxes = gather_rows(boxes, op.Div(flat, i64(num_classes)))
        else:  # every (n, c) needs its own copy of box n
            expanded = op.Expand(op.Unsqueeze(boxes, i64([2])), i64([1, 1, num_classes, 1]))  # [B, N, C, 4]
            cand_boxes = op.Reshape(expanded, i64([0, total, 4]))
        if not agnostic:
            # class offsets larger than the coordinate range (torchvision's coordinate trick)
            extent = op.Sub(op.ReduceMax(boxes, keepdims=0), op.ReduceMin(boxes, keepdims=0))
            span = op.Add(extent, const(1.0, np.float32))
            offset = op.Mul(op.Cast(op.Mod(flat, i64(num_classes)), to=onnx.TensorProto.FLOAT), span)
            cand_boxes = op.Add(cand_boxes, op.Unsqueeze(offset, i64([-1])))
        max_out = i64([top_k or total])
        selected = op.NonMaxSuppression(cand_boxes, op.Unsqueeze(space, i64([1])), max_out, *nms_args)
        batch_idx, _, kept_pos = columns(selected, 3)
        return space, space_to_flat, batch_idx, kept_pos

    def batched_nms(
        boxes, scores, score_threshold: float, iou_threshold: float, max_det: int,
        pre_nms_top_k: int = -1, class_agnostic: bool = False,
    ):
        num, num_classes = _static_dims(scores, "sdk::batched_nms scores", range(1, 3))
        total = num * num_classes
        per_class_boxes = len(boxes.shape) == 4  # before Cast: its output has no shape yet
        boxes = op.Cast(boxes, to=onnx.TensorProto.FLOAT)
        flat_scores = op.Reshape(op.Cast(scores, to=onnx.TensorProto.FLOAT), i64([0, total]))  # index n*C + c
        top_k = pre_nms_top_k if 0 < pre_nms_top_k < total else 0
        nms_args = (const([iou_threshold], np.float32), const([score_threshold], np.float32))
        if class_agnostic or per_class_boxes:
            space, space_to_flat, batch_idx, kept_pos = single_class_nms(
                boxes, flat_scores, num_classes, total, per_class_boxes, top_k, class_agnostic, nms_args
            )
        else:
            space_to_flat = None
            space, batch_idx, kept_pos = native_per_class_nms(boxes, flat_scores, num, num_classes, top_k, nms_args)

        # kept candidates keep their score, the rest -inf; TopK ranks them (ties: lower index)
        neg_inf = const(-np.inf, np.float32)
        kept_idx = op.Concat(batch_idx, kept_pos, axis=1)  # [S, 2]
        ranked = op.ScatterND(op.Expand(neg_inf, op.Shape(space)), kept_idx, op.GatherND(space, kept_idx))
        k = min(max_det, top_k or total)
        top_scores, top_pos = op.TopK(ranked, i64([k]), axis=1)
        kept_count = op.ReduceSum(op.Cast(op.Greater(ranked, neg_inf), to=onnx.TensorProto.INT64), i64([1]), keepdims=1)
        count = op.Min(kept_count, i64(k))  # [B, 1]
        valid = op.Less(op.Range(i64(0), i64(k), i64(1)), count)  # [B, k]
        flat_idx = top_pos if space_to_flat is None else op.GatherElements(space_to_flat, top_pos, axis=1)
        if per_class_boxes:
            det_boxes = gather_rows(op.Reshape(boxes, i64([0, total, 4])), flat_idx)
        else:
            det_boxes = gather_rows(boxes, op.Div(flat_idx, i64(num_classes)))
        zero = const(0.0, np.float32)
        det_boxes = op.Where(op.Unsqueeze(valid, i64([-1])), det_boxes, zero)
        det_scores = op.Where(valid, top_scores, zero)
        labels = op.Cast(op.Mod(flat_idx, i64(num_classes)), to=onnx.TensorProto.INT32)
        det_labels = op.Where(valid, labels, const(0, np.int32))
        if k < max_det:  # fewer candidates than output rows: zero-pad to K
            det_boxes = op.Pad(det_boxes, i64([0, 0, 0, 0, max_det - k, 0]))
            det_scores = op.Pad(det_scores, i64([0, 0, 0, max_det - k]))
            det_labels = op.Pad(det_labels, i64([0, 0, 0, max_det - k]))
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
        level = op.Reshape(op.Sub(level, const(float(k_min), np.float32)), const([-1], np.int64))  # [B*R]
        mode = "half_pixel" if aligned else "output_half_pixel"
        # RoiAlign fails on inverted boxes; theirs is a NaN level, so they match no level and stay zero
        safe_rois = op.Concat(x1, y1, op.Max(x1, x2), op.Max(y1, y2), axis=1)
        pooled_shape = op.Concat(op.Shape(flat_rois, start=0, end=1), op.Shape(features[0], start=1, end=2),
                                 i64([int(output_size[0]), int(output_size[1])]), axis=0)
        pooled = op.ConstantOfShape(pooled_shape, value=ir.tensor(np.array([0.0], np.float32)))  # [B*R, C, oh, ow]
        for index, feature in enumerate(features):
            # each level pools only its own RoIs (NonZero -> Gather -> RoiAlign -> ScatterND):
            # pooling every RoI on every level and selecting would cost one RoiAlign per level
            rows = op.Transpose(op.NonZero(op.Equal(level, const(float(index), np.float32))), perm=[1, 0])  # [M, 1]
            picked = op.Reshape(rows, i64([-1]))
            per_level = op.RoiAlign(
                op.Cast(feature, to=float_t),
                op.Gather(safe_rois, picked, axis=0),
                op.Gather(batch_idx, picked, axis=0),
                coordinate_transformation_mode=mode,
                mode="avg",
                output_height=int(output_size[0]),
                output_width=int(output_size[1]),
                sampling_ratio=max(int(sampling_ratio), 0),
                spatial_scale=float(spatial_scales[index]),
            )
            pooled = op.ScatterND(pooled, rows, per_level)
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
        nms, roi_align = _tensorrt_lowerings(opset)
    else:
        nms, roi_align = _onnxruntime_lowerings(opset)
    return {
        torch.ops.sdk.batched_nms.default: nms,
        torch.ops.sdk.multilevel_roi_align.default: roi_align,
    }
