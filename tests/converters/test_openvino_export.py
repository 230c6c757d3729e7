"""``sdk.converters.openvino_export``: ONNX (onnxruntime flavor) -> OpenVINO IR, run.

One random-weight Faster R-CNN tiny graph (module fixture, ~6 s: it has every op the
onnxruntime flavor uses: NonMaxSuppression, TopK, RoiAlign, ScatterND, NonZero, ...)
in the precisions an export produces: fp32; fp16 and bf16 Conv sections between Cast
nodes (made here on the graph, standing in for the exporter's network-in-dtype
graphs); int8 QDQ (onnxruntime's static quantization, symmetric per-channel). Each is
converted, packaged as an ``openvino`` model_dir and run through ``OpenVINOBackend``
on a batch of 3 images other than any warm-up, against ONNX Runtime on the same graph.
"""

from __future__ import annotations

import collections
import sys

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov
import pytest
import torch
from deploy_support import CLASSES, assert_same_contract, default_postprocess, random_detector, small_preprocess
from onnx import TensorProto, helper, numpy_helper
from support.hardware import requires_openvino_bf16

from sdk.converters.model_dir import write_model_dir
from sdk.converters.onnx_export import export_onnx
from sdk.converters.openvino_export import convert_onnx_to_openvino
from sdk.data.synthetic import synthetic_images
from sdk.errors import BackendUnavailableError, ConfigError, ModelDirError
from sdk.manifest import load_model_dir
from sdk.models.deploy import build_deploy_module
from sdk.preprocess import preprocess_batch
from sdk.runtime.openvino_backend import OpenVINOBackend

NAME = "fasterrcnn_tiny"
MAX_BATCH = 4


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; export time barely changes
    try:
        pre = small_preprocess()
        model = random_detector(NAME, image_size=pre.static_shape)
        deploy = build_deploy_module(model, preprocess=pre, postprocess=default_postprocess(NAME))
        path = tmp_path_factory.mktemp("onnx") / "model.onnx"
        return export_onnx(deploy, path, flavor="onnxruntime", input_shape=pre.static_shape, max_batch=MAX_BATCH)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch():
    images = synthetic_images(3, seed=7)  # original sizes 200..520 px; the warm-up batch is 1 image of zeros
    return preprocess_batch(images, small_preprocess())[0]


def ort_outputs(path, batch) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, {"images": batch})))


def openvino_model_dir(onnx_path, out, precision: str):
    xml, weights = convert_onnx_to_openvino(onnx_path, out / "ir")
    pre = small_preprocess()
    return write_model_dir(
        out / "model_dir", model_file=xml, backend="openvino", flavor="onnxruntime", precision=precision,
        model_name=NAME, classes=CLASSES, preprocess=pre, postprocess=default_postprocess(NAME),
        input_shape=pre.static_shape, max_batch=MAX_BATCH, extra_files=[weights],
    )


def runtime_precisions(backend: OpenVINOBackend, layer_type: str) -> collections.Counter:
    """How many ``layer_type`` nodes the compiled model runs in each precision."""
    counts = collections.Counter()
    for op in backend.compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) == layer_type:
            counts[info["runtimePrecision"].astype(str)] += 1
    return counts


def cast_convs(model: onnx.ModelProto, dtype: int) -> onnx.ModelProto:
    """Every Conv computes in ``dtype`` (FLOAT16 or BFLOAT16): a Cast in, weights and
    bias stored in ``dtype``, a Cast back to float32 out (in place; returns ``model``)."""
    graph = model.graph
    weights = {t.name: t for t in graph.initializer}
    nodes = []
    for node in graph.node:
        if node.op_type != "Conv":
            nodes.append(node)
            continue
        low = f"{node.input[0]}/{node.name}/low"
        nodes.append(helper.make_node("Cast", [node.input[0]], [low], to=dtype))
        inputs = [low]
        for name in node.input[1:]:
            array = numpy_helper.to_array(weights[name]).astype(np.float32)
            graph.initializer.append(_low_precision_tensor(array, f"{name}/low", dtype))
            inputs.append(f"{name}/low")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        nodes.append(helper.make_node("Conv", inputs, [f"{node.output[0]}/low"], name=node.name, **attrs))
        nodes.append(helper.make_node("Cast", [f"{node.output[0]}/low"], [node.output[0]], to=TensorProto.FLOAT))
    del graph.node[:]
    graph.node.extend(nodes)
    if dtype == TensorProto.BFLOAT16:  # Conv takes bfloat16 from opset 22
        for opset in model.opset_import:
            if opset.domain in ("", "ai.onnx"):
                opset.version = max(opset.version, 22)
    return model


def _low_precision_tensor(array: np.ndarray, name: str, dtype: int) -> onnx.TensorProto:
    if dtype == TensorProto.FLOAT16:
        return numpy_helper.from_array(array.astype(np.float16), name)
    bits = array.view(np.uint32)
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
    return helper.make_tensor(name, TensorProto.BFLOAT16, array.shape, rounded.tobytes(), raw=True)


def test_fp32_graph_converts_to_an_ir_with_the_graphs_interface_and_fp32_weights(fp32_onnx, tmp_path):
    xml, weights = convert_onnx_to_openvino(fp32_onnx, tmp_path / "ir")
    assert (xml.name, weights.name) == ("model.xml", "model.bin") and weights.stat().st_size > 0
    assert sorted(p.name for p in (tmp_path / "ir").iterdir()) == ["model.bin", "model.xml"]  # no temp files left
    model = ov.Core().read_model(str(xml))
    (images,) = model.inputs
    assert images.get_any_name() == "images" and images.get_element_type() == ov.Type.u8
    assert str(images.get_partial_shape()) == "[?,3,224,288]"  # batch still dynamic
    outputs = {o.get_any_name(): o.get_element_type().get_type_name() for o in model.outputs}
    assert outputs == {"num_dets": "i32", "boxes": "f32", "scores": "f32", "labels": "i32"}
    # save_model's default compress_to_fp16=True would have stored these as f16 constants
    weight_types = {op.get_element_type() for op in model.get_ordered_ops() if op.get_type_name() == "Constant"}
    assert ov.Type.f16 not in weight_types and ov.Type.f32 in weight_types


def test_fp32_runs_as_onnxruntime_does(fp32_onnx, batch, tmp_path):
    backend = OpenVINOBackend(load_model_dir(openvino_model_dir(fp32_onnx, tmp_path, "fp32")))
    assert backend.inference_precision == "f32"
    assert runtime_precisions(backend, "ROIAlign") == {"f32": 3}
    assert_same_contract(backend.infer(batch), ort_outputs(fp32_onnx, batch), atol=1e-3, rtol=1e-4,
                         score_atol=1e-4, score_rtol=0, min_dets=5)


def test_fp16_sections_convert_and_run(fp32_onnx, batch, tmp_path):
    graph = cast_convs(onnx.load(str(fp32_onnx)), TensorProto.FLOAT16)
    onnx.save(graph, tmp_path / "fp16.onnx")
    xml, _ = convert_onnx_to_openvino(tmp_path / "fp16.onnx", tmp_path / "ir")
    constants = collections.Counter(op.get_element_type().get_type_name() for op in ov.Core().read_model(str(xml))
                                    .get_ordered_ops() if op.get_type_name() == "Constant")
    assert constants["f16"] >= 29  # the conv weights and biases stay as the graph stores them

    backend = OpenVINOBackend(load_model_dir(openvino_model_dir(tmp_path / "fp16.onnx", tmp_path, "fp16")))
    assert backend.inference_precision == "f32"  # fp16 weights upcast: computes what ONNX Runtime does
    assert_same_contract(backend.infer(batch), ort_outputs(tmp_path / "fp16.onnx", batch), atol=2e-3, rtol=1e-4,
                         score_atol=1e-4, score_rtol=0, min_dets=5)


def test_bf16_sections_convert_and_run_in_bf16(fp32_onnx, batch, tmp_path):
    graph = cast_convs(onnx.load(str(fp32_onnx)), TensorProto.BFLOAT16)
    onnx.save(graph, tmp_path / "bf16.onnx")
    model_dir = openvino_model_dir(tmp_path / "bf16.onnx", tmp_path, "bf16")
    if "BF16" not in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        with pytest.raises(BackendUnavailableError, match="needs a CPU with bfloat16 support"):
            OpenVINOBackend(load_model_dir(model_dir))
        return
    backend = OpenVINOBackend(load_model_dir(model_dir))
    assert backend.inference_precision == "f32"  # the IR has bf16 sections: run exactly those in bf16
    # the graph's bf16 convolutions in bf16; RoIAlign, decoding and NMS in f32 as the graph says
    assert runtime_precisions(backend, "Convolution") == {"bf16": 29}
    assert runtime_precisions(backend, "ROIAlign") == {"f32": 3}
    ours, ref = backend.infer(batch), ort_outputs(fp32_onnx, batch)  # ONNX Runtime has no bf16 Conv
    np.testing.assert_array_equal(ours["num_dets"], ref["num_dets"])
    np.testing.assert_allclose(np.sort(ours["scores"], 1), np.sort(ref["scores"], 1), atol=0.03)


@requires_openvino_bf16  # without it, the missing CPU support is reported first
def test_float32_graph_labelled_bf16_is_refused(fp32_onnx, tmp_path):
    """OpenVINO's own bf16 precision would run RoIAlign and the RPN arithmetic in bf16 too."""
    with pytest.raises(ModelDirError, match="has no bfloat16 layers") as info:
        OpenVINOBackend(load_model_dir(openvino_model_dir(fp32_onnx, tmp_path, "bf16")))
    assert "\n" not in str(info.value)


def test_int8_qdq_graph_converts_and_runs_in_int8(fp32_onnx, batch, tmp_path):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Images(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{"images": preprocess_batch([im], small_preprocess())[0]}
                                 for im in synthetic_images(2, seed=1)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(
        str(fp32_onnx), str(tmp_path / "int8.onnx"), Images(), quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["Conv"],
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in onnx.load(tmp_path / "int8.onnx").graph.node}
    backend = OpenVINOBackend(load_model_dir(openvino_model_dir(tmp_path / "int8.onnx", tmp_path, "int8")))
    assert backend.inference_precision == "f32"  # for what lies outside the QDQ layers
    assert set(runtime_precisions(backend, "Convolution")) <= {"i8", "u8"}
    ours, ref = backend.infer(batch), ort_outputs(tmp_path / "int8.onnx", batch)
    # two int8 implementations round differently: same detections count, close scores
    np.testing.assert_array_equal(ours["num_dets"], ref["num_dets"])
    np.testing.assert_allclose(np.sort(ours["scores"], 1), np.sort(ref["scores"], 1), atol=0.1)


def test_tensorrt_flavor_graph_is_refused_with_the_fix(tmp_path):
    node = helper.make_node("BatchedNMS", ["boxes", "scores"], ["num_dets"], domain="sdk", max_det=5)
    graph = helper.make_graph(
        [node], "trt_tail",
        [helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 4, 4]),
         helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4, 2])],
        [helper.make_tensor_value_info("num_dets", TensorProto.INT32, [1, 1])],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("sdk", 1)]),
              tmp_path / "trt.onnx")
    with pytest.raises(BackendUnavailableError, match=r"cannot convert .*--flavor onnxruntime") as info:
        convert_onnx_to_openvino(tmp_path / "trt.onnx", tmp_path / "ir")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "ir" / "model.xml").exists()


def test_missing_input_and_missing_openvino(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="ONNX file not found"):
        convert_onnx_to_openvino(tmp_path / "nope.onnx", tmp_path / "ir")
    (tmp_path / "model.onnx").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailableError, match=r"pip install 'sdk-detect\[openvino\]'"):
        convert_onnx_to_openvino(tmp_path / "model.onnx", tmp_path / "ir")
