"""Reduced-precision exports of every tiny family, run in every CPU backend that takes them.

Random weights make scores near-ties, so a small numeric change reorders which of them
survive NMS: here they check what a precision must not change (fp16 and bf16 keep
almost every detection of the fp32 graph; the graph's casts sit where the precision
record says) and that int8 graphs run with the contract's shapes and types in ONNX
Runtime and OpenVINO. Accuracy after int8 is checked on a trained model in
``tests/converters/test_precision_gate.py``.

Each export costs 10-30 s on a small CPU: Faster R-CNN (both custom ops) and FCOS run
by default, RetinaNet and SSDlite with -m slow.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from deploy_support import TINY_MODELS
from support.hardware import requires_openvino_bf16

from sdk import Detector
from sdk.converters.export import ExportOptions, export_checkpoint
from sdk.data.synthetic import synthetic_images
from sdk.engine.verify import match_detections
from sdk.manifest import load_model_dir

FAMILIES = [name if name in ("fcos_tiny", "fasterrcnn_tiny") else pytest.param(name, marks=pytest.mark.slow)
            for name in TINY_MODELS]


@pytest.fixture(scope="module")
def calibration_images(tmp_path_factory):
    import cv2

    folder = tmp_path_factory.mktemp("calibration")
    for i, image in enumerate(synthetic_images(6, seed=3)):
        cv2.imwrite(str(folder / f"{i}.png"), image[..., ::-1])
    return folder


@pytest.fixture(scope="module")
def export(tiny_checkpoint, calibration_images, tmp_path_factory):
    """``export(name, backend, precision) -> model_dir``, cached."""
    import torch

    cache, folder = {}, tmp_path_factory.mktemp("precision_dirs")

    def make(name, backend, precision):
        if (name, backend, precision) not in cache:
            threads = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                options = ExportOptions(backend=backend, precision=precision, max_batch=4,
                                        calib_images=str(calibration_images), calib_count=6)
                cache[name, backend, precision] = export_checkpoint(
                    tiny_checkpoint(name)[0], folder / f"{name}-{backend}-{precision}", options)
            finally:
                torch.set_num_threads(threads)
        return cache[name, backend, precision]

    return make


def _images():
    images = synthetic_images(3, seed=7)  # 3 sizes, none the 224x288 input; batch 3 was not traced (2)
    assert len({im.shape for im in images}) == 3
    return images


def _match_ratio(reference, candidate, *, iou):
    matched = sum(match_detections(a, b, iou=iou)[0] for a, b in zip(reference, candidate))
    total = sum(max(len(a), len(b)) for a, b in zip(reference, candidate))
    assert total > 0
    return matched / total


def _assert_contract(detections, model_dir):
    assert all(len(d) > 0 for d in detections)
    for d, image in zip(detections, _images()):
        assert d.boxes.dtype == np.float32 and d.scores.dtype == np.float32
        assert (d.boxes >= 0).all() and (d.boxes[:, 2] <= image.shape[1]).all() and (d.boxes[:, 3] <= image.shape[0]).all()
        assert np.all(np.diff(d.scores) <= 0)
        assert d.labels.min() >= 0 and d.labels.max() < len(load_model_dir(model_dir).manifest.classes)


@pytest.mark.parametrize("name", FAMILIES)
def test_fp16_graph_keeps_the_fp32_detections_in_both_runtimes(name, export, exported_model_dir):
    fp32 = Detector(exported_model_dir(name, "onnxruntime"))(_images(), channel_order="rgb")
    for backend in ("onnxruntime", "openvino"):
        model_dir = export(name, backend, "fp16")
        manifest = load_model_dir(model_dir).manifest
        assert manifest.precision == "fp16" and manifest.precision_details["network_dtype"] == "float16"
        fp16 = Detector(model_dir)(_images(), channel_order="rgb")
        assert _match_ratio(fp32, fp16, iou=0.9) >= 0.95, backend


@pytest.mark.parametrize("name", FAMILIES)
def test_fp16_graph_casts_at_the_network_boundary(name, export):
    graph = onnx.shape_inference.infer_shapes(onnx.load(str(load_model_dir(export(name, "onnxruntime", "fp16")).model_path)))
    types = {v.name: v.type.tensor_type.elem_type for v in (*graph.graph.value_info, *graph.graph.input)}
    types.update({t.name: t.data_type for t in graph.graph.initializer})
    convs = [n for n in graph.graph.node if n.op_type in ("Conv", "Gemm", "MatMul")]
    assert convs and all(types.get(n.input[1]) == onnx.TensorProto.FLOAT16 for n in convs)
    # NMS, RoIAlign and every output stay float32
    custom = [n for n in graph.graph.node if n.op_type in ("NonMaxSuppression", "RoiAlign")]
    assert custom and all(types.get(n.input[0]) == onnx.TensorProto.FLOAT for n in custom)
    assert all(o.type.tensor_type.elem_type in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT32)
               for o in graph.graph.output)


@requires_openvino_bf16
@pytest.mark.parametrize("name", FAMILIES)
def test_openvino_bf16_keeps_the_fp32_detections(name, export, exported_model_dir):
    fp32 = Detector(exported_model_dir(name, "onnxruntime"))(_images(), channel_order="rgb")
    model_dir = export(name, "openvino", "bf16")
    assert load_model_dir(model_dir).manifest.precision_details["network_dtype"] == "bfloat16"
    detector = Detector(model_dir)
    # the graph's bf16 layers run in bf16, everything it keeps float32 (NMS, RoIAlign, decoding) in f32
    precisions = {}
    for op in detector.backend.compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        precisions.setdefault(info["layerType"].astype(str), set()).add(info["runtimePrecision"].astype(str))
    assert precisions["Convolution"] == {"bf16"} and precisions["NonMaxSuppression"] == {"f32"}
    assert precisions.get("ROIAlign", {"f32"}) == {"f32"}
    assert _match_ratio(fp32, detector(_images(), channel_order="rgb"), iou=0.5) >= 0.85


@pytest.mark.parametrize("name", FAMILIES)
def test_int8_graph_runs_in_onnxruntime_and_openvino(name, export):
    for backend in ("onnxruntime", "openvino"):
        model_dir = export(name, backend, "int8")
        manifest = load_model_dir(model_dir).manifest
        details = manifest.precision_details
        assert manifest.precision == "int8" and details["calibration_images"] == 6
        assert details["quantized_layers"] > 0 and details["float32_layers"] == []
        _assert_contract(Detector(model_dir)(_images(), channel_order="rgb"), model_dir)
