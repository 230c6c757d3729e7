"""``sdk.converters.calibration`` and ``sdk.converters.quantize``: int8 as a file-in,
file-out stage, checked on the tiny DeployModule-shaped network exported to ONNX."""

from __future__ import annotations

import json

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from tiny_deploy import PREPROCESS, TinyDeploy

from sdk.converters.calibration import CalibrationReader, calibration_paths
from sdk.converters.onnx_export import export_onnx
from sdk.converters.quantize import output_layers, quantize_int8
from sdk.errors import ConfigError
from sdk.preprocess import preprocess_batch


def _write_images(folder, count, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        h, w = (int(v) for v in rng.integers(20, 90, 2))
        image = cv2.GaussianBlur(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), (0, 0), 2)
        cv2.imwrite(str(folder / f"img{i:03d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    return _write_images(tmp_path_factory.mktemp("calib") / "images", 10)


@pytest.fixture(scope="module")
def fp32_onnx(tmp_path_factory):
    return export_onnx(TinyDeploy(), tmp_path_factory.mktemp("onnx") / "tiny.onnx", flavor="onnxruntime",
                       input_shape=PREPROCESS.size, max_batch=4)


def test_calibration_paths_sample_a_seeded_subset_capped_by_what_exists(images):
    assert len(calibration_paths(images_dir=images, count=100)) == 10
    some = calibration_paths(images_dir=images, count=4)
    assert len(some) == 4 and some == calibration_paths(images_dir=images, count=4)
    assert some != sorted(images.iterdir())[:4] or len(set(some)) == 4  # a sample, not necessarily the first


def test_calibration_paths_from_a_coco_annotation_file(images, tmp_path):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    (root / "images").symlink_to(images)
    names = sorted(p.name for p in images.iterdir())[:3]
    ann = root / "annotations" / "val.json"
    ann.write_text(json.dumps({"images": [{"id": i, "file_name": n} for i, n in enumerate(names + ["gone.png"])]}))
    assert [p.name for p in calibration_paths(dataset=ann)] == names


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "int8 needs real images to calibrate on: pass --calib-images DIR"),
        ({"images_dir": "IMAGES", "dataset": "x.json"}, "not both"),
        ({"images_dir": "IMAGES", "count": 0}, "--calib-count must be >= 1"),
        ({"images_dir": "/nonexistent"}, "is not a folder"),
        ({"images_dir": "EMPTY"}, "no images"),
        ({"dataset": "/nonexistent.json"}, "not found"),
        ({"dataset": "BAD_JSON"}, "is not a COCO annotation file"),
    ],
)
def test_calibration_paths_errors_say_how_to_calibrate(images, tmp_path, kwargs, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text("{}")
    subst = {"IMAGES": str(images), "EMPTY": str(tmp_path / "empty"), "BAD_JSON": str(tmp_path / "bad.json")}
    kwargs = {k: subst.get(v, v) for k, v in kwargs.items()}
    with pytest.raises(ConfigError, match=message) as info:
        calibration_paths(**kwargs)
    assert "\n" not in str(info.value)


def test_calibration_reader_yields_what_detector_feeds_the_model(images):
    paths = calibration_paths(images_dir=images)
    reader = CalibrationReader(paths, PREPROCESS, batch_size=4)
    batches = []
    while (item := reader.get_next()) is not None:
        batches.append(item["images"])
    assert [len(b) for b in batches] == [4, 4, 2] and len(reader) == 3
    expected, _ = preprocess_batch([str(p) for p in paths[:4]], PREPROCESS,
                                   load=lambda p: cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB))
    np.testing.assert_array_equal(batches[0], expected)
    assert batches[0].dtype == np.uint8 and batches[0].shape[1:] == (3, *PREPROCESS.size)
    reader.rewind()
    np.testing.assert_array_equal(reader.get_next()["images"], batches[0])


def _conv(name, inp, out, cin, cout):
    weight = numpy_helper.from_array(np.random.default_rng(len(name)).standard_normal((cout, cin, 1, 1), np.float32),
                                     f"{name}_w")
    return helper.make_node("Conv", [inp, weight.name], [out], name=name), weight


def test_output_layers_are_the_convs_nothing_quantizable_follows():
    # x -> body -> relu -> (cls -> sigmoid, box -> reshape -> tail_matmul) : tail_matmul is the output layer of its branch
    body, w1 = _conv("body", "x", "b", 3, 4)
    cls, w2 = _conv("cls", "r", "c", 4, 2)
    box, w3 = _conv("box", "r", "d", 4, 4)
    nodes = [body, helper.make_node("Relu", ["b"], ["r"], name="relu"), cls, box,
             helper.make_node("Sigmoid", ["c"], ["scores"], name="sig"),
             helper.make_node("Flatten", ["d"], ["flat"], name="flat"),
             helper.make_node("MatMul", ["flat", "m"], ["boxes"], name="tail_matmul")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 2, 2])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("boxes", TensorProto.FLOAT, None)],
        initializer=[w1, w2, w3, numpy_helper.from_array(np.ones((16, 4), np.float32), "m")],
    )
    assert output_layers(helper.make_model(graph)) == ["cls", "tail_matmul"]


def _zero_points(model):
    return [numpy_helper.to_array(t) for t in model.graph.initializer if t.name.endswith("_zero_point")]


def _float_weight_convs(model):
    initializers = {t.name: t for t in model.graph.initializer}
    return sorted(n.name for n in model.graph.node if n.op_type == "Conv" and n.input[1] in initializers
                  and initializers[n.input[1]].data_type == TensorProto.FLOAT)


def test_quantize_int8_writes_a_qdq_graph_close_to_fp32(fp32_onnx, images, tmp_path):
    reader = CalibrationReader(calibration_paths(images_dir=images), PREPROCESS, batch_size=2)
    out = tmp_path / "int8.onnx"
    details = quantize_int8(fp32_onnx, out, reader)
    model = onnx.load(str(out))
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("QuantizeLinear") >= 3 and ops.count("DequantizeLinear") >= 3
    # every conv quantized, the box/cls predictors too: each reads its weights through a DequantizeLinear
    assert details["calibration_images"] == 10 and details["quantized_layers"] == 4
    assert details["float32_layers"] == [] and _float_weight_convs(model) == []
    # symmetric int8, biases left float: what TensorRT's explicit quantization takes
    assert details["activations"] == "int8"
    assert _zero_points(model) and all(z.dtype == np.int8 and not z.any() for z in _zero_points(model))

    rng = np.random.default_rng(7)
    batch = rng.integers(0, 256, (3, 3, *PREPROCESS.size), dtype=np.uint8)  # 3: neither calibration batch size
    fp32 = ort.InferenceSession(str(fp32_onnx)).run(None, {"images": batch})
    int8 = ort.InferenceSession(str(out)).run(None, {"images": batch})
    assert int8[1].shape == fp32[1].shape and int8[0].dtype == np.int32
    n = int(min(fp32[0].min(), int8[0].min()))
    assert n > 0
    np.testing.assert_allclose(np.sort(int8[2][:, :n], axis=1), np.sort(fp32[2][:, :n], axis=1), atol=0.08)  # toy net


def test_uint8_activations_and_float_output_layers(fp32_onnx, images, tmp_path):
    reader = CalibrationReader(calibration_paths(images_dir=images), PREPROCESS, batch_size=2)
    out = tmp_path / "u8.onnx"
    details = quantize_int8(fp32_onnx, out, reader, activations="uint8", float_output_layers=True)
    model = onnx.load(str(out))
    assert details["activations"] == "uint8" and "uint8 activations, asymmetric" in details["scheme"]
    assert details["quantized_layers"] == 2 and details["float32_layers"] == ["box", "cls"]
    assert len(_float_weight_convs(model)) == 2
    activation_zps = [z for z in _zero_points(model) if z.ndim == 0 or z.size == 1]
    assert activation_zps and all(z.dtype == np.uint8 for z in activation_zps)
    assert any(z.dtype == np.int8 for z in _zero_points(model))  # the weights stay int8


@pytest.mark.parametrize(("kwargs", "message"), [({"activations": "int4"}, "int8 activations must be one of"),
                                                  ({"keep_fp32": ("nope",)}, "the graph has no such nodes")])
def test_quantize_int8_refuses_bad_options(fp32_onnx, images, tmp_path, kwargs, message):
    reader = CalibrationReader(calibration_paths(images_dir=images, count=2), PREPROCESS)
    with pytest.raises(ConfigError, match=message):
        quantize_int8(fp32_onnx, tmp_path / "out.onnx", reader, **kwargs)


def test_quantize_refuses_plugin_nodes_it_cannot_calibrate(tmp_path, images):
    path = export_onnx(TinyDeploy(), tmp_path / "trt.onnx", flavor="tensorrt", input_shape=PREPROCESS.size, max_batch=2)
    reader = CalibrationReader(calibration_paths(images_dir=images), PREPROCESS)
    with pytest.raises(ConfigError, match="export int8 with --flavor onnxruntime"):
        quantize_int8(path, tmp_path / "out.onnx", reader)


def test_calibration_reads_a_few_batches_at_a_time_and_keeps_every_range(fp32_onnx, images, tmp_path):
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    from sdk.converters.quantize import calibration_stride

    assert [calibration_stride(n) for n in (1, 5, 8, 9, 75, 13)] == [1, 5, 8, 3, 5, 1]
    reader = CalibrationReader(calibration_paths(images_dir=images), PREPROCESS, batch_size=1)
    reader.set_range(start_index=3, end_index=5)
    assert sum(1 for _ in iter(reader.get_next, None)) == 2
    # strided (5 of 10 batches at a time) == every batch held at once: no batch is lost
    quantize_int8(fp32_onnx, tmp_path / "strided.onnx", CalibrationReader(reader.paths, PREPROCESS))
    quantize_static(str(fp32_onnx), str(tmp_path / "whole.onnx"), CalibrationReader(reader.paths, PREPROCESS),
                    quant_format=QuantFormat.QDQ, op_types_to_quantize=["Conv"], per_channel=True,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    extra_options={"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False})

    def input_scale(path):
        model = onnx.load(str(path))
        node = next(n for n in model.graph.node if n.op_type == "QuantizeLinear")
        return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == node.input[1]))

    np.testing.assert_allclose(input_scale(tmp_path / "strided.onnx"), input_scale(tmp_path / "whole.onnx"), rtol=1e-6)
