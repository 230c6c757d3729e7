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
from sdk.runtime.onnxruntime_backend import OnnxRuntimeBackend, physical_cores


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
    threads = OnnxRuntimeBackend(load_model_dir(make_model_dir()), intra_op_threads=1, warmup=False)
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
    with pytest.raises(BackendUnavailableError, match="pip install onnxruntime-gpu"):
        create_backend(load_model_dir(make_model_dir()), device="cuda")


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
