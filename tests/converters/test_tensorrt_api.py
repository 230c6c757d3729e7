"""One TensorRT build and run path for 10.10+ and 11.x, checked without TensorRT.

- the version gate and the build-target (TensorRT version, GPU SM) check;
- every name of the removed-in-11 table exists in TensorRT 10's published stubs (so the
  table is the real thing, not a typo list), and no SDK source uses one of them;
- ``build_engine`` and ``TensorRTBackend`` run against stand-ins exposing exactly the
  10.13 surface (from ``tensorrt-stubs``) and the 11.x surface (10.13 minus the table):
  strongly typed network, AOT-plugin preference, no precision flags, no calibrator.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import numpy as np
import pytest
from fake_tensorrt import SURFACE_10, fake_cudart, fake_tensorrt
from tiny_deploy import POSTPROCESS, PREPROCESS, TinyDeploy

from sdk.converters import tensorrt_build
from sdk.trt_plugins import tensorrt_registration as tensorrt_plugins
from sdk.errors import BackendUnavailableError, ModelDirError
from sdk.manifest import load_model_dir
from sdk.runtime import tensorrt_backend
from sdk.runtime.tensorrt_api import (
    REMOVED_IN_TENSORRT_11,
    build_target,
    check_tensorrt_version,
    network_flags,
    target_mismatch,
)

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("sdk", "converters", "trt_plugins", "serving", "benchmarks", "models")
IO = {"images": ("INPUT", "UINT8"), "num_dets": ("OUTPUT", "INT32"), "boxes": ("OUTPUT", "FLOAT"),
      "scores": ("OUTPUT", "FLOAT"), "labels": ("OUTPUT", "INT32")}


def test_version_gate_is_one_line():
    for ok in ("10.10.0.31", "10.13.2", "11.0", "11.1.0.106"):
        check_tensorrt_version(ok)
    for old in ("10.9.0", "8.6.1", "10"):
        with pytest.raises(BackendUnavailableError, match=">= 10.10") as info:
            check_tensorrt_version(old)
        assert "\n" not in str(info.value)


def test_removed_names_are_real_tensorrt_10_names():
    for owner, names in REMOVED_IN_TENSORRT_11.items():
        assert set(names) <= set(SURFACE_10[owner]), f"{owner}: {set(names) - set(SURFACE_10[owner])}"


def test_no_source_uses_a_name_tensorrt_11_removed():
    """Attribute accesses (``x.FP16``, ``cfg.int8_calibrator``) and imported names."""
    removed = {name for names in REMOVED_IN_TENSORRT_11.values() for name in names}
    builder_flags = set(REMOVED_IN_TENSORRT_11["BuilderFlag"])
    uses = []
    for folder in SOURCE_DIRS:
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Attribute):
                    owner = node.value.attr if isinstance(node.value, ast.Attribute) else getattr(node.value, "id", "")
                    # FP16/INT8/... are common words: only as BuilderFlag members
                    if node.attr in removed - builder_flags or (node.attr in builder_flags and owner == "BuilderFlag"):
                        uses.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
                elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tensorrt"):
                    uses += [f"{path.relative_to(ROOT)}:{node.lineno} import {a.name}" for a in node.names
                             if a.name in removed]
    assert not uses, f"names TensorRT 11 removed: {uses}"


def test_target_mismatch_says_what_the_engine_was_built_for():
    built = build_target("10.13.0.35", (9, 0), "NVIDIA H100")
    assert target_mismatch(built, dict(built)) is None
    assert target_mismatch({}, built) is None  # older model_dirs recorded no target
    other_version = target_mismatch(built, build_target("11.1.0.106", (9, 0)))
    assert other_version == "the engine was built for TensorRT 10.13.0.35 (this machine has 11.1.0.106)"
    other_gpu = target_mismatch(built, build_target("10.13.0.35", (8, 6), "NVIDIA A10"))
    assert other_gpu == "the engine was built for a sm_90 GPU NVIDIA H100 (this one is sm_86 NVIDIA A10)"


@pytest.mark.parametrize("version", ["10", "11"])
def test_network_flags_exist_in_both_versions(version):
    trt = fake_tensorrt(version)
    flag = trt.NetworkDefinitionCreationFlag
    assert network_flags(trt, aot_plugins=False) == 1 << int(flag.STRONGLY_TYPED)
    assert network_flags(trt, aot_plugins=True) == (1 << int(flag.STRONGLY_TYPED)) | (
        1 << int(flag.PREFER_AOT_PYTHON_PLUGINS))
    if version == "11":
        with pytest.raises(AttributeError):
            flag.EXPLICIT_BATCH  # noqa: B018


@pytest.fixture
def fake_machine(monkeypatch):
    """A GPU machine with a stand-in TensorRT of the requested version."""
    def install(version: str, *, sm=(9, 0)):
        trt = fake_tensorrt(version, engine=IO)
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setattr(tensorrt_backend, "_cudart", lambda: fake_cudart(sm=sm))
        monkeypatch.setattr(tensorrt_backend, "missing_requirements", lambda device: [])
        arches = []
        monkeypatch.setattr(tensorrt_plugins, "register_plugins", lambda *, arch=None: arches.append(arch) or True)
        trt.plugin_arches = arches
        return trt
    return install


@pytest.fixture(scope="module")
def tensorrt_onnx(tmp_path_factory):
    from sdk.converters.onnx_export import export_onnx

    return export_onnx(TinyDeploy(), tmp_path_factory.mktemp("trt") / "model.onnx", flavor="tensorrt",
                       input_shape=PREPROCESS.size, max_batch=4)


@pytest.mark.parametrize("version", ["10", "11"])
def test_build_path_on_each_tensorrt_surface(fake_machine, tmp_path, version, tensorrt_onnx):
    trt = fake_machine(version)
    engine, target = tensorrt_build.build_engine(
        tensorrt_onnx, tmp_path / "e.engine", max_batch=4, input_shape=PREPROCESS.size,
        timing_cache=tmp_path / "timing.cache",
    )
    assert engine.read_bytes() == b"engine" and (tmp_path / "timing.cache").read_bytes() == b"cache"
    assert target == {"tensorrt": trt.__version__, "sm": "sm_90", "gpu": "NVIDIA Fake GPU"}
    assert trt.plugin_arches == [90]  # AOT kernels compiled for the engine's SM
    calls = {(owner, name): args for owner, name, args in trt.calls}
    flags = trt.NetworkDefinitionCreationFlag
    assert calls[("Builder", "create_network")] == (
        (1 << int(flags.STRONGLY_TYPED)) | (1 << int(flags.PREFER_AOT_PYTHON_PLUGINS)),)
    assert ("IBuilderConfig", "set_flag") not in calls  # precision is the graph's: no builder flags
    assert calls[("IOptimizationProfile", "set_shape")] == ("images", *tensorrt_build.optimization_profile(
        PREPROCESS.size, 4))


@pytest.fixture
def engine_model_dir(tmp_path, tensorrt_onnx):
    def write(target):
        engine = tmp_path / "built.engine"
        engine.write_bytes(b"engine")
        return tensorrt_build.write_tensorrt_model_dir(
            engine, tmp_path / "md", onnx_path=tensorrt_onnx, precision="fp16", model_name="tiny",
            classes=("a", "b", "c"), preprocess=PREPROCESS, postprocess=POSTPROCESS, max_batch=4, build_target=target,
        )
    return write


@pytest.mark.parametrize("version", ["10", "11"])
def test_run_path_on_each_tensorrt_surface(fake_machine, engine_model_dir, version):
    trt = fake_machine(version)
    loaded = load_model_dir(engine_model_dir(build_target(trt.__version__, (9, 0), "NVIDIA Fake GPU")))
    backend = tensorrt_backend.TensorRTBackend(loaded, device="cuda", warmup=False)
    outputs = backend.infer(np.zeros((3, 3, *PREPROCESS.size), np.uint8))
    assert {n: a.shape for n, a in outputs.items()} == {
        "num_dets": (3, 1), "boxes": (3, POSTPROCESS["max_det"], 4), "scores": (3, POSTPROCESS["max_det"]),
        "labels": (3, POSTPROCESS["max_det"])}
    names = [(owner, name) for owner, name, _ in trt.calls]
    assert ("IExecutionContext", "execute_async_v3") in names and ("IExecutionContext", "set_input_shape") in names


@pytest.mark.parametrize(("built_sm", "built_version"), [((8, 0), "11.1.0.106"), ((9, 0), "10.13.0.35")])
def test_engine_for_another_gpu_or_version_fails_in_one_line(fake_machine, engine_model_dir, built_sm, built_version):
    trt = fake_machine("11")
    loaded = load_model_dir(engine_model_dir(build_target(built_version, built_sm, "NVIDIA A100")))
    with pytest.raises(ModelDirError, match="rebuild it on this machine") as info:
        tensorrt_backend.TensorRTBackend(loaded, device="cuda", warmup=False)
    assert "\n" not in str(info.value) and "the engine was built for" in str(info.value)
    assert not any(name == "deserialize_cuda_engine" for _, name, _ in trt.calls)  # checked before TensorRT


@pytest.fixture(scope="module")
def fcos_checkpoint(tmp_path_factory):
    from deploy_support import save_random_checkpoint

    path, _ = save_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "fcos.pt", "fcos_tiny")
    return path


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_tensorrt_export_builds_from_the_precision_graph(fake_machine, fcos_checkpoint, tmp_path, precision):
    """``sdk export --backend tensorrt --precision P`` on TensorRT 11: the engine is built
    from ``export_precision_onnx``'s graph (fp16 network with the plugin nodes; int8 QDQ
    with symmetric int8 activations on the standard-op graph) and the manifest says so."""
    import cv2
    import onnx

    from sdk.converters.export import ExportOptions, export_checkpoint

    trt = fake_machine("11")
    parsed = []

    def parser(network, logger):
        def parse_from_file(path):
            model = onnx.load(path)
            zero_points = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer if "zero_point" in t.name]
            parsed.append(({(n.domain, n.op_type) for n in model.graph.node}, zero_points,
                           {t.data_type for t in model.graph.initializer}))
            return True
        from fake_tensorrt import _Strict
        return _Strict(trt, "OnnxParser", parse_from_file=parse_from_file, num_errors=0)

    trt.OnnxParser = parser
    images = tmp_path / "calib"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(4):
        cv2.imwrite(str(images / f"{i}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    options = ExportOptions(backend="tensorrt", precision=precision, max_batch=2, calib_images=str(images),
                            calib_count=4)
    manifest = load_model_dir(export_checkpoint(fcos_checkpoint, tmp_path / "md", options)).manifest
    (ops, zero_points, initializer_types), = parsed
    assert (manifest.backend, manifest.precision) == ("tensorrt", precision)
    assert manifest.build_target == {"tensorrt": trt.__version__, "sm": "sm_90", "gpu": "NVIDIA Fake GPU"}
    if precision == "fp16":
        assert manifest.flavor == "tensorrt" and manifest.plugins == ("sdk::BatchedNMS",)
        assert ("sdk", "BatchedNMS") in ops and onnx.TensorProto.FLOAT16 in initializer_types
        assert manifest.precision_details["network_dtype"] == "float16"
    else:
        assert manifest.flavor == "onnxruntime" and manifest.plugins == ()
        assert ("", "QuantizeLinear") in ops and ("", "NonMaxSuppression") in ops
        assert manifest.precision_details["activations"] == "int8"
        assert trt.plugin_arches == []  # no plugin nodes: no plugins, no Triton needed
        assert all(z.dtype == np.int8 and not z.any() for z in zero_points)  # symmetric int8 activations
    assert not any(name == "set_flag" for _, name, _ in trt.calls)
