"""The TensorRT exporter and backend without TensorRT (CPU CI), plus the real build and
run where TensorRT and a GPU exist (``tensorrt`` / ``gpu`` markers).

Covered on CPU: profile shapes, the graph flavor per precision, the model_dir of an
engine (with its build target), per-batch output buffer sizes, the TensorRT dtype map,
that a missing TensorRT / GPU fails at once with ONE error naming what is missing, and
the build and run paths against TensorRT stand-ins with the 10.x and 11.x API surfaces
(``fake_tensorrt.py``; ``test_tensorrt_api.py`` has the version facts).
"""

from __future__ import annotations

import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from tiny_deploy import POSTPROCESS, PREPROCESS, TinyDeploy, random_images

from sdk.converters import tensorrt_build
from sdk.converters.tensorrt_build import (
    build_engine,
    export_checkpoint_tensorrt,
    graph_flavor,
    optimization_profile,
    write_tensorrt_model_dir,
)
from sdk.errors import BackendUnavailableError, ConfigError
from sdk.manifest import INPUT_DTYPES, OUTPUT_DTYPES, load_model_dir
from sdk.runtime import tensorrt_backend
from sdk.runtime.base import create_backend
from sdk.runtime.tensorrt_backend import (
    TRT_TO_NUMPY,
    TensorRTBackend,
    buffer_nbytes,
    check_tensorrt_available,
    output_shapes,
)

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
CLASSES = ("a", "b", "c")
TARGET = {"tensorrt": "11.1.0.106", "sm": "sm_90", "gpu": "NVIDIA H100"}


@pytest.fixture(scope="module")
def tensorrt_onnx(tmp_path_factory):
    from sdk.converters.onnx_export import export_onnx

    torch.set_num_threads(1)
    return export_onnx(
        TinyDeploy(), tmp_path_factory.mktemp("trt") / "model.onnx", flavor="tensorrt",
        input_shape=PREPROCESS.size, max_batch=4,
    )


@pytest.fixture
def engine_dir(tmp_path, tensorrt_onnx):
    """A tensorrt model_dir around a stand-in engine file (the manifest is what is tested)."""
    engine = tmp_path / "built.engine"
    engine.write_bytes(b"not a real engine")
    return write_tensorrt_model_dir(
        engine, tmp_path / "model_dir", onnx_path=tensorrt_onnx, precision="fp16", model_name="tiny",
        classes=CLASSES, preprocess=PREPROCESS, postprocess=POSTPROCESS, max_batch=4, build_target=TARGET,
    )


@pytest.mark.parametrize(
    ("max_batch", "expected_batches"), [(1, (1, 1, 1)), (2, (1, 1, 2)), (8, (1, 4, 8)), (7, (1, 3, 7))]
)
def test_optimization_profile_spans_the_batch_range(max_batch, expected_batches):
    profile = optimization_profile((-1, 3, 320, 480), max_batch)
    assert tuple(s[0] for s in profile) == expected_batches
    assert {s[1:] for s in profile} == {(3, 320, 480)}
    assert optimization_profile((320, 480), max_batch) == profile


@pytest.mark.parametrize(
    ("shape", "max_batch"), [((-1, 3, -1, -1), 4), ((320,), 4), ((1, 1, 32, 32), 4), ((32, 32), 0)]
)
def test_optimization_profile_rejects_dynamic_shapes_and_bad_batches(shape, max_batch):
    with pytest.raises(ConfigError):
        optimization_profile(shape, max_batch)


def test_graph_flavor_per_precision():
    # int8 calibration runs the graph in ONNX Runtime: the standard-op graph, which TensorRT parses too
    assert [graph_flavor(p) for p in ("fp32", "fp16", "int8")] == ["tensorrt", "tensorrt", "onnxruntime"]


def test_engine_model_dir_manifest(engine_dir):
    manifest = json.loads((engine_dir / "manifest.json").read_text())
    assert (manifest["backend"], manifest["flavor"], manifest["precision"]) == ("tensorrt", "tensorrt", "fp16")
    assert manifest["plugins"] == ["sdk::BatchedNMS"] and manifest["model_file"] == "model.engine"
    assert (manifest["input"]["min_batch"], manifest["input"]["max_batch"]) == (1, 4)
    assert manifest["input"]["shape"] == [-1, 3, *PREPROCESS.size]
    assert manifest["build_target"] == TARGET
    assert load_model_dir(engine_dir).manifest.build_target == TARGET  # schema and hashes


def test_output_buffers_per_batch(engine_dir):
    outputs = load_model_dir(engine_dir).manifest.outputs
    shapes = output_shapes(outputs, 3)
    assert shapes == {"num_dets": (3, 1), "boxes": (3, 10, 4), "scores": (3, 10), "labels": (3, 10)}
    dtypes = {o.name: o.dtype for o in outputs}
    assert {n: buffer_nbytes(s, dtypes[n]) for n, s in shapes.items()} == {
        "num_dets": 12, "boxes": 480, "scores": 120, "labels": 120
    }


def test_dtype_map_covers_every_manifest_dtype():
    assert set(INPUT_DTYPES) | set(OUTPUT_DTYPES) <= set(TRT_TO_NUMPY.values())
    assert all(np.dtype(v) for v in TRT_TO_NUMPY.values())


@pytest.mark.skipif(HAS_TENSORRT, reason="checks the error raised without TensorRT")
def test_backend_without_tensorrt_fails_at_once_with_one_error(engine_dir):
    with pytest.raises(BackendUnavailableError) as info:
        create_backend(load_model_dir(engine_dir), device="cuda")
    message = str(info.value)
    assert "'tensorrt' Python package" in message and "--backend onnxruntime" in message
    if not torch.cuda.is_available():
        assert "CUDA GPU" in message


def test_missing_pieces_are_named_together(monkeypatch):
    monkeypatch.setattr(tensorrt_backend.importlib.util, "find_spec", lambda name: object())  # "installed"
    monkeypatch.setattr(tensorrt_backend, "_cudart", lambda: object())
    monkeypatch.setattr(tensorrt_backend, "cuda_device_count", lambda: 0)
    with pytest.raises(BackendUnavailableError) as info:
        check_tensorrt_available("cuda")
    assert "CUDA GPU 'cuda' (found 0)" in str(info.value) and "tensorrt' Python" not in str(info.value)
    with pytest.raises(BackendUnavailableError, match="only on NVIDIA GPUs"):
        check_tensorrt_available("cpu")
    monkeypatch.setattr(tensorrt_backend, "cuda_device_count", lambda: 1)
    check_tensorrt_available("cuda:0")  # everything present: no error
    with pytest.raises(BackendUnavailableError, match="'cuda:1' \\(found 1\\)"):
        check_tensorrt_available("cuda:1")


@pytest.mark.skipif(HAS_TENSORRT and torch.cuda.is_available(), reason="checks the error raised without TensorRT")
def test_export_and_build_fail_before_doing_any_work(tmp_path, tensorrt_onnx):
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        export_checkpoint_tensorrt(None, None, tmp_path / "out", SimpleNamespace(device=None), tmp_path / "ckpt.pt")
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        build_engine(tensorrt_onnx, tmp_path / "e.engine", max_batch=2, input_shape=(32, 48))
    assert not (tmp_path / "out").exists()


@pytest.mark.tensorrt
@pytest.mark.gpu
def test_engine_matches_eager(tmp_path, tensorrt_onnx):
    if not HAS_TENSORRT or not torch.cuda.is_available():
        pytest.skip("needs TensorRT >= 10.10 and a CUDA GPU")
    engine, target = build_engine(
        tensorrt_onnx, tmp_path / "e.engine", max_batch=4, input_shape=PREPROCESS.size, workspace_gb=1,
        timing_cache=tmp_path / "timing.cache",
    )
    assert (tmp_path / "timing.cache").is_file() and target["sm"].startswith("sm_")
    model_dir = write_tensorrt_model_dir(
        engine, tmp_path / "md", onnx_path=tensorrt_onnx, precision="fp32", model_name="tiny", classes=CLASSES,
        preprocess=PREPROCESS, postprocess=POSTPROCESS, max_batch=4, build_target=target,
    )
    backend = TensorRTBackend(load_model_dir(model_dir), device="cuda")
    for batch in (1, 3):
        images = random_images(batch, seed=batch)
        got, want = backend.infer(images.numpy()), TinyDeploy()(images)
        np.testing.assert_array_equal(got["num_dets"], want[0].numpy())
        np.testing.assert_allclose(got["boxes"], want[1].detach().numpy(), atol=1e-3)
    assert tensorrt_build.optimization_profile(PREPROCESS.size, 4).max[0] == backend.max_batch


def test_dynamic_shape_profile_spans_the_preprocess_range():
    from sdk.converters.tensorrt_build import engine_hw_range
    from sdk.preprocess import Preprocess

    pre = Preprocess(mode="keep_ratio", size=(800, 1333))
    assert engine_hw_range(pre.with_static_shape()) is None
    profile = optimization_profile((-1, -1), 8, hw_range=engine_hw_range(pre))
    assert profile == ((1, 3, 32, 32), (4, 3, 800, 1344), (8, 3, 1344, 1344))
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        optimization_profile((-1, -1), 8, hw_range=((64, 64), (32, 32), (128, 128)))


def test_engine_input_must_fit_the_profile():
    from sdk.runtime.tensorrt_backend import check_input_hw

    check_input_hw((800, 1088), (1344, 1344), 32)
    check_input_hw((320, 480), (320, 480), None)  # a static engine: its one size
    with pytest.raises(ValueError, match="takes 320x480 only"):
        check_input_hw((320, 448), (320, 480), None)
    for hw in ((800, 1090), (1376, 32), (0, 32)):
        with pytest.raises(ValueError, match="outside the engine's profile"):
            check_input_hw(hw, (1344, 1344), 32)
