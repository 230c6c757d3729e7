"""ONNX Runtime implementation of the ``sdk::`` nodes of the TensorRT-flavor graph.

Lets tests (and CPU-only users) run the exact graph TensorRT would get, with the
``sdk::BatchedNMS`` / ``sdk::MultiLevelRoIAlign`` nodes computed by the torch
reference implementations::

    from sdk.trt_plugins import ort_ops
    session = ort_ops.inference_session("model.onnx")          # file left unchanged
    outputs = session.run(None, {"images": batch})

Mechanism: onnxruntime-extensions Python custom ops (``onnx_op`` / ``PyOp``) always
live in domain ``ai.onnx.contrib``, take only scalar attributes and a fixed number
of inputs. ``prepare_model`` therefore rewrites a *copy* of the model for the session:
each ``sdk::<Op>`` node becomes ``ai.onnx.contrib::Sdk<Op>_<num inputs>`` and its
attributes are packed into one JSON string attribute ``sdk_attributes``. The rest of
the graph is untouched. Float32 inputs only, which is what every precision's graph
gives the ops (fp16 graphs cast to float32 around them). The Python op copies its
outputs element by element: fine for tests, not a production path.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime_extensions import PyCustomOpDef, default_opset_domain, get_library_path, onnx_op

from .batched_nms.reference import nms_over_candidates_reference
from .multilevel_roi_align.reference import multilevel_roi_align_reference

SDK_DOMAIN = "sdk"
CONTRIB_DOMAIN = default_opset_domain()  # "ai.onnx.contrib"
ATTRIBUTES_KEY = "sdk_attributes"
MAX_FEATURE_MAPS = 8  # MultiLevelRoIAlign variants registered: 1 .. MAX_FEATURE_MAPS levels

_F32, _I32, _STR = PyCustomOpDef.dt_float, PyCustomOpDef.dt_int32, PyCustomOpDef.dt_string


def _contrib_name(op_type: str, num_inputs: int) -> str:
    return f"Sdk{op_type}_{num_inputs}"


def _batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, **attrs) -> tuple[np.ndarray, ...]:
    a = json.loads(attrs[ATTRIBUTES_KEY])
    outputs = nms_over_candidates_reference(
        torch.from_numpy(boxes),
        torch.from_numpy(scores),
        torch.from_numpy(labels),
        score_threshold=a["score_threshold"],
        iou_threshold=a["iou_threshold"],
        max_det=a["max_det"],
        class_agnostic=bool(a.get("class_agnostic", 0)),
    )
    return tuple(t.numpy() for t in outputs)


def _multilevel_roi_align(rois: np.ndarray, *features: np.ndarray, **attrs) -> np.ndarray:
    a = json.loads(attrs[ATTRIBUTES_KEY])
    pooled = multilevel_roi_align_reference(
        torch.from_numpy(rois),
        [torch.from_numpy(f) for f in features[: len(a["spatial_scales"])]],  # the rest pads the plugin's inputs
        output_size=a["output_size"],
        sampling_ratio=a["sampling_ratio"],
        aligned=bool(a["aligned"]),
        spatial_scales=a["spatial_scales"],
        canonical_scale=a.get("canonical_scale", 224),
        canonical_level=a.get("canonical_level", 4),
    )
    return pooled.numpy()


def _register_python_ops() -> None:
    onnx_op(
        op_type=_contrib_name("BatchedNMS", 3),
        inputs=[_F32, _F32, _I32],
        outputs=[_I32, _F32, _F32, _I32],
        attrs={ATTRIBUTES_KEY: _STR},
    )(_batched_nms)
    for levels in range(1, MAX_FEATURE_MAPS + 1):
        onnx_op(
            op_type=_contrib_name("MultiLevelRoIAlign", levels + 1),
            inputs=[_F32] * (levels + 1),
            outputs=[_F32],
            attrs={ATTRIBUTES_KEY: _STR},
        )(_multilevel_roi_align)


_register_python_ops()


def _rewrite_node(node: onnx.NodeProto) -> None:
    if node.op_type not in ("BatchedNMS", "MultiLevelRoIAlign"):
        raise ValueError(f"no ONNX Runtime implementation of node sdk::{node.op_type} ({node.name!r})")
    if node.op_type == "MultiLevelRoIAlign" and not 2 <= len(node.input) <= MAX_FEATURE_MAPS + 1:
        raise ValueError(
            f"sdk::MultiLevelRoIAlign supports 1..{MAX_FEATURE_MAPS} feature maps, "
            f"node {node.name!r} has {len(node.input) - 1}"
        )
    values = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    values = {k: list(v) if isinstance(v, (list, tuple)) else v for k, v in values.items()}
    node.op_type = _contrib_name(node.op_type, len(node.input))
    node.domain = CONTRIB_DOMAIN
    del node.attribute[:]
    node.attribute.append(onnx.helper.make_attribute(ATTRIBUTES_KEY, json.dumps(values)))


def prepare_model(model: str | Path | onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` whose ``sdk::`` nodes run as onnxruntime-extensions Python ops.

    Top-level graph nodes only (the exporter does not put these ops in subgraphs).
    """
    proto = onnx.load(str(model)) if isinstance(model, (str, Path)) else model
    proto = onnx.ModelProto.FromString(proto.SerializeToString())
    for node in proto.graph.node:
        if node.domain == SDK_DOMAIN:
            _rewrite_node(node)
    imports = [o for o in proto.opset_import if o.domain not in (SDK_DOMAIN, CONTRIB_DOMAIN)]
    del proto.opset_import[:]
    proto.opset_import.extend([*imports, onnx.helper.make_opsetid(CONTRIB_DOMAIN, 1)])
    return proto


def session_options(**options) -> ort.SessionOptions:
    """``onnxruntime.SessionOptions`` with the onnxruntime-extensions library registered.

    Keyword arguments are set as attributes (e.g. ``intra_op_num_threads=1``). The model
    must have gone through ``prepare_model`` (``inference_session`` does both).
    """
    opts = ort.SessionOptions()
    for key, value in options.items():
        if not hasattr(opts, key):
            raise ValueError(f"onnxruntime.SessionOptions has no option {key!r}")
        setattr(opts, key, value)
    opts.register_custom_ops_library(get_library_path())
    return opts


def inference_session(
    model: str | Path | onnx.ModelProto, *, providers: tuple[str, ...] = ("CPUExecutionProvider",), **options
) -> ort.InferenceSession:
    """An ONNX Runtime session running a TensorRT-flavor model (``sdk::`` nodes) on CPU."""
    return ort.InferenceSession(
        prepare_model(model).SerializeToString(), session_options(**options), providers=list(providers)
    )
