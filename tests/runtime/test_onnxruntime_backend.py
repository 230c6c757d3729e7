"""ONNX Runtime backend and backend dispatch."""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
import pytest

from sdk.errors import BackendUnavailableError, ModelDirError
from sdk.manifest import load_model_dir
from sdk.preprocess import Preprocess, preprocess_batch
from sdk.runtime import base
from sdk.runtime.base import Backend, create_backend
from sdk.runtime.onnxruntime_backend import OnnxRuntimeBackend, cuda_provider_problem, physical_cores


def test_contract_outputs(make_model_dir, scene):
    pre = Preprocess(size=(64, 96))
    backend = create_backend(load_model_dir(make_model_dir(preprocess=pre, max_det=7)), device="cpu")
    assert isinstance(backend, OnnxRuntimeBackend) and isinstance(backend, Backend)
    assert backend.input_dtype == np.uint8 and (backend.min_batch, backend.max_batch) == (1, 4)
    batch, _ = preprocess_batch([scene(64, 96, (10, 20, 30, 40)), np.zeros((64, 96, 3), np.uint8)], pre)
    out = backend.infer(batch)
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {
        "num_dets": (np.int32, (2, 1)),
        "boxes": (np.float32, (2, 7, 4)),
        "scores": (np.float32, (2, 7)),
        "labels": (np.int32, (2, 7)),
    }
    assert out["num_dets"].ravel().tolist() == [1, 0]
    np.testing.assert_array_equal(out["boxes"][0, 0], [10, 20, 30, 40])  # no resize: exact
    assert not out["boxes"][0, 1:].any() and not out["scores"][1].any()


def test_session_options(make_model_dir):
    backend = OnnxRuntimeBackend(load_model_dir(make_model_dir()))
    options = backend.session.get_session_options()
    assert options.intra_op_num_threads == physical_cores() >= 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert backend.session.get_providers() == ["CPUExecutionProvider"]
    threads = create_backend(load_model_dir(make_model_dir()), intra_op_threads=1, warmup=False)
    assert threads.session.get_session_options().intra_op_num_threads == 1


def test_float_input_is_cast(make_model_dir):
    pre = Preprocess(size=(32, 32), normalize_in_graph=False)
    backend = create_backend(load_model_dir(make_model_dir(preprocess=pre)))
    assert backend.input_dtype == np.float32
    batch = np.zeros((1, 3, 32, 32), np.float64)  # cast to what the graph takes
    assert backend.infer(batch)["num_dets"].tolist() == [[0]]


def test_manifest_disagreeing_with_graph(make_model_dir):
    with pytest.raises(ModelDirError, match=r"takes tensor\(uint8\), the manifest says float32"):
        create_backend(load_model_dir(make_model_dir(manifest_input_dtype="float32")))
    with pytest.raises(ModelDirError, match=r"lacks the detection outputs \['num_dets'\]"):
        create_backend(load_model_dir(make_model_dir(output_names=("count", "boxes", "scores", "labels"))))
    with pytest.raises(ModelDirError, match="fixed batch of 2 but the manifest says 1..4"):
        create_backend(load_model_dir(make_model_dir(fixed_batch=2)))


def test_cuda_without_cuda_provider(make_model_dir):
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu is installed: CUDA is available")
    with pytest.raises(BackendUnavailableError, match=r"pip install 'sdk-detect\[gpu\]'") as info:
        create_backend(load_model_dir(make_model_dir()), device="cuda")
    assert "\n" not in str(info.value)


def test_cuda_provider_problems_are_one_sentence_each():
    cpu = ["CPUExecutionProvider"]
    assert cuda_provider_problem(["CUDAExecutionProvider", *cpu], ["onnxruntime-gpu"]) is None
    side_by_side = cuda_provider_problem(cpu, ["onnxruntime", "onnxruntime-gpu"])
    assert "side by side" in side_by_side and "pip uninstall -y onnxruntime onnxruntime-gpu" in side_by_side
    assert "CUDA/cuDNN libraries" in cuda_provider_problem(cpu, ["onnxruntime-gpu"])
    assert "pip install 'sdk-detect[gpu]'" in cuda_provider_problem(cpu, ["onnxruntime"])
    assert all("\n" not in m for m in (side_by_side, cuda_provider_problem(cpu, ["onnxruntime"])))


def test_detector_on_cuda_asks_for_the_cuda_provider(make_model_dir, monkeypatch):
    """What ``Detector(model_dir, device="cuda:1")`` gives ONNX Runtime, checked on a CPU:
    the session is created on CPU but records the providers it was asked for."""
    from sdk import Detector

    requested = []
    real_session = ort.InferenceSession

    class RecordingSession(real_session):
        def __init__(self, model, sess_options=None, providers=None, **kwargs):
            requested.append(providers)
            super().__init__(model, sess_options=sess_options, providers=["CPUExecutionProvider"], **kwargs)

        def get_providers(self):
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", RecordingSession)
    detector = Detector(make_model_dir(), device="cuda:1")
    assert requested == [[("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]]
    assert detector.backend.name == "onnxruntime"


def test_custom_op_library_missing(make_model_dir, monkeypatch):
    loaded = load_model_dir(make_model_dir(plugins=("sdk::BatchedNMS",)))
    monkeypatch.setitem(sys.modules, "sdk.trt_plugins.ort_ops", None)  # import fails as if not installed
    with pytest.raises(BackendUnavailableError, match=r"custom ops \['sdk::BatchedNMS'\].*onnxruntime-extensions"):
        create_backend(loaded)


def test_unparseable_graph(make_model_dir):
    loaded = load_model_dir(make_model_dir())
    loaded.model_path.write_bytes(b"garbage")  # load_model_dir already verified: bypass the hash check
    with pytest.raises(BackendUnavailableError, match="cannot load"):
        create_backend(loaded)


@pytest.mark.parametrize("backend", ["tensorrt", "aoti"])
def test_backend_module_not_installed(make_model_dir, monkeypatch, backend):
    import dataclasses

    loaded = load_model_dir(make_model_dir())
    loaded = dataclasses.replace(loaded, manifest=dataclasses.replace(loaded.manifest, backend=backend))
    monkeypatch.setitem(base._BACKEND_CLASSES, backend, (f"sdk.runtime._no_such_{backend}_backend", "Backend"))
    with pytest.raises(BackendUnavailableError, match=rf"the '{backend}' backend is not available"):
        create_backend(loaded)


def test_backend_library_not_installed(make_model_dir, monkeypatch, tmp_path):
    module = tmp_path / "fake_trt_backend.py"
    module.write_text("import tensorrt_that_is_not_installed\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_model_dir(make_model_dir())
    monkeypatch.setitem(base._BACKEND_CLASSES, "onnxruntime", ("fake_trt_backend", "Backend"))
    with pytest.raises(BackendUnavailableError, match="needs the Python package 'tensorrt_that_is_not_installed'"):
        create_backend(loaded)


def _nms_graph(path, *, weights: np.ndarray, candidates: np.ndarray, max_det: int, size: int):
    """uint8 images -> sdk::BatchedNMS over fixed ``candidates`` [N, 4] with scores
    [B, N, 2] = ``weights`` [N, 2] * (mean R, mean G) / 255: the TensorRT-flavor tail."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(candidates[None].astype(np.float32), "cand"),
        numpy_helper.from_array(weights[None].astype(np.float32), "w"),
        numpy_helper.from_array(np.array([len(candidates), 4], np.int64), "n4"),
        numpy_helper.from_array(np.array([1], np.int64), "ax1"),
        numpy_helper.from_array(np.array([0], np.int64), "start"),
        numpy_helper.from_array(np.array([2], np.int64), "end"),
        numpy_helper.from_array(np.array(255.0, np.float32), "c255"),
        numpy_helper.from_array(np.array([0, weights.size], np.int64), "flat_shape"),
        numpy_helper.from_array(np.array([weights.size], np.int64), "top_k"),
        numpy_helper.from_array(np.array(weights.shape[1], np.int64), "classes"),
        numpy_helper.from_array(np.array([-1], np.int64), "last"),
    ]
    nodes = [
        helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
        helper.make_node("Div", ["m", "c255"], ["m01"]),
        helper.make_node("Slice", ["m01", "start", "end", "ax1"], ["rg"]),
        helper.make_node("Unsqueeze", ["rg", "ax1"], ["rg3"]),
        helper.make_node("Mul", ["rg3", "w"], ["cand_scores"]),
        helper.make_node("Shape", ["x"], ["b"], start=0, end=1),
        helper.make_node("Concat", ["b", "n4"], ["bn4"], axis=0),
        helper.make_node("Expand", ["cand", "bn4"], ["cand_boxes"]),
        # the tensorrt flavor's pre-NMS top-k in front of the node (onnx_lowerings)
        helper.make_node("Reshape", ["cand_scores", "flat_shape"], ["flat"]),
        helper.make_node("TopK", ["flat", "top_k"], ["top_scores", "top_idx"], axis=1),
        helper.make_node("Div", ["top_idx", "classes"], ["rows"]),
        helper.make_node("Unsqueeze", ["rows", "last"], ["rows1"]),
        helper.make_node("GatherND", ["cand_boxes", "rows1"], ["top_boxes"], batch_dims=1),
        helper.make_node("Mod", ["top_idx", "classes"], ["top_labels64"]),
        helper.make_node("Cast", ["top_labels64"], ["top_labels"], to=TensorProto.INT32),
        helper.make_node(
            "BatchedNMS",
            ["top_boxes", "top_scores", "top_labels"],
            ["num_dets", "boxes", "scores", "labels"],
            domain="sdk",
            score_threshold=0.05,
            iou_threshold=0.5,
            max_det=max_det,
            class_agnostic=0,
        ),
    ]
    k = max_det
    graph = helper.make_graph(
        nodes,
        "nms_tail",
        [helper.make_tensor_value_info("images", TensorProto.UINT8, ["B", 3, size, size])],
        [
            helper.make_tensor_value_info("num_dets", TensorProto.INT32, ["B", 1]),
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["B", k, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["B", k]),
            helper.make_tensor_value_info("labels", TensorProto.INT32, ["B", k]),
        ],
        initializer=inits,
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("sdk", 1)]
    onnx.save(helper.make_model(graph, opset_imports=opsets, ir_version=8), str(path))
    return path


def test_tensorrt_flavor_graph_runs_with_sdk_custom_ops(tmp_path):
    pytest.importorskip("sdk.trt_plugins.ort_ops", reason="sdk.trt_plugins.ort_ops (onnxruntime-extensions) needed")
    torch = pytest.importorskip("torch")
    from sdk.converters.model_dir import write_model_dir
    from sdk.trt_plugins.batched_nms.reference import batched_nms_reference

    candidates = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [5, 20, 15, 31]], np.float32)
    weights = np.array([[1.0, 0.2], [0.9, 0.1], [0.3, 0.8], [0.05, 0.6]], np.float32)
    model = _nms_graph(tmp_path / "nms.onnx", weights=weights, candidates=candidates, max_det=6, size=32)
    pre = Preprocess(size=(32, 32))
    model_dir = write_model_dir(
        tmp_path / "model_dir",
        model_file=model,
        backend="onnxruntime",
        flavor="tensorrt",
        precision="fp32",
        model_name="nms_tail",
        classes=["red", "green"],
        preprocess=pre,
        postprocess={"score_thr": 0.05, "iou_thr": 0.5, "max_det": 6},
        input_shape=(32, 32),
        max_batch=4,
        plugins=["sdk::BatchedNMS"],
    )
    backend = create_backend(load_model_dir(model_dir))
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    out = backend.infer(batch)

    means = batch.astype(np.float32).mean(axis=(2, 3))[:, :2] / 255.0
    scores = means[:, None, :] * weights[None]
    boxes = np.broadcast_to(candidates, (3, 4, 4)).copy()
    expected = batched_nms_reference(torch.from_numpy(boxes), torch.from_numpy(scores), 0.05, 0.5, 6)
    for name, ref in zip(("num_dets", "boxes", "scores", "labels"), expected):
        np.testing.assert_allclose(out[name], ref.numpy(), rtol=1e-5, atol=1e-5, err_msg=name)
    assert out["num_dets"].min() > 0


def test_a_graph_without_cpu_kernels_fails_in_one_line(tmp_path):
    """A bf16 Conv (opset 22): ONNX Runtime's CPU provider has no kernel for it."""
    import onnx
    from onnx import TensorProto, helper

    from sdk.converters.model_dir import write_model_dir

    weight = helper.make_tensor("w", TensorProto.BFLOAT16, (1, 3, 1, 1), np.zeros(3, np.uint16).tobytes(), raw=True)
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.BFLOAT16),
             helper.make_node("Conv", ["x", "w"], ["y"]),
             helper.make_node("Cast", ["y"], ["num_dets"], to=TensorProto.INT32)]
    outputs = [helper.make_tensor_value_info("num_dets", TensorProto.INT32, None)]
    for name, dtype in (("boxes", TensorProto.FLOAT), ("scores", TensorProto.FLOAT), ("labels", TensorProto.INT32)):
        nodes.append(helper.make_node("Cast", ["y"], [name], to=dtype))
        outputs.append(helper.make_tensor_value_info(name, dtype, None))
    graph = helper.make_graph(nodes, "bf16", [helper.make_tensor_value_info("images", TensorProto.UINT8, [-1, 3, 8, 8])],
                              outputs, initializer=[weight])
    path = tmp_path / "bf16.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 22)]), path)
    model_dir = write_model_dir(
        tmp_path / "model_dir", model_file=path, backend="onnxruntime", flavor="onnxruntime", precision="bf16",
        model_name="bf16_conv", classes=["a"], preprocess=Preprocess(size=(8, 8)),
        postprocess={"score_thr": 0.05, "iou_thr": 0.5, "max_det": 1}, input_shape=(8, 8), max_batch=2,
    )
    with pytest.raises(BackendUnavailableError, match=r"no kernel for a node of the bf16 graph .* --backend openvino") as info:
        create_backend(load_model_dir(model_dir))
    assert "\n" not in str(info.value)
