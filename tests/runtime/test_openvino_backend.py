"""OpenVINO backend: agreement with ONNX Runtime on the same graph, ``Detector`` end to
end, torch-freeness, the precision it compiles with, and the errors of bad uses.

A random-weight FCOS tiny graph (module fixture, ~8 s) is packaged twice from one
ONNX file, as an ``onnxruntime`` and an ``openvino`` model_dir; the fast checks use
the hand-built bright-box graph (``support.bright_box``) converted to OpenVINO.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import openvino as ov
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models" / "deploy"))  # the random tiny detectors
from deploy_support import (  # noqa: E402
    CLASSES,
    assert_same_contract,
    default_postprocess,
    random_detector,
    small_preprocess,
)

from sdk import Detector  # noqa: E402
from sdk.converters.model_dir import write_model_dir  # noqa: E402
from sdk.converters.openvino_export import convert_onnx_to_openvino  # noqa: E402
from sdk.data.synthetic import synthetic_images  # noqa: E402
from sdk.engine.verify import match_detections  # noqa: E402
from sdk.errors import BackendUnavailableError, ModelDirError  # noqa: E402
from sdk.manifest import load_model_dir  # noqa: E402
from sdk.preprocess import preprocess_batch  # noqa: E402
from sdk.runtime import base  # noqa: E402
from sdk.runtime import openvino_backend as ovb  # noqa: E402
from sdk.runtime.base import Backend, create_backend  # noqa: E402
from sdk.runtime.openvino_backend import OpenVINOBackend  # noqa: E402

NAME = "fcos_tiny"
CPU_HAS_BF16 = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def to_openvino(onnx_model_dir: Path, out: Path, *, precision: str = "fp32", graph: Path | None = None) -> Path:
    """The ``openvino`` model_dir of the graph in ``onnx_model_dir`` (or of ``graph``),
    with the same manifest."""
    loaded = load_model_dir(onnx_model_dir)
    m = loaded.manifest
    xml, weights = convert_onnx_to_openvino(graph or loaded.model_path, out / "ir")
    return write_model_dir(
        out / "openvino_dir", model_file=xml, backend="openvino", flavor=m.flavor, precision=precision,
        model_name=m.model_name, classes=m.classes, preprocess=m.preprocess, postprocess=m.postprocess,
        input_shape=m.input.hw, min_batch=m.input.min_batch, max_batch=m.input.max_batch,
        input_dtype=m.input.dtype, outputs=m.outputs, extra_files=[weights],
    )


@pytest.fixture(scope="module")
def fcos_dirs(tmp_path_factory):
    """(onnxruntime model_dir, openvino model_dir) of one exported FCOS tiny graph."""
    import torch

    from sdk.converters.onnx_export import export_onnx
    from sdk.models.deploy import build_deploy_module

    work = tmp_path_factory.mktemp("fcos")
    pre, post = small_preprocess(), default_postprocess(NAME)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the machine is shared; export time barely changes
    try:
        deploy = build_deploy_module(random_detector(NAME, image_size=pre.static_shape), preprocess=pre,
                                     postprocess=post)
        onnx_path = export_onnx(deploy, work / "model.onnx", flavor="onnxruntime", input_shape=pre.static_shape,
                                max_batch=4)
    finally:
        torch.set_num_threads(threads)
    ort_dir = write_model_dir(
        work / "onnxruntime_dir", model_file=onnx_path, backend="onnxruntime", flavor="onnxruntime",
        precision="fp32", model_name=NAME, classes=CLASSES, preprocess=pre, postprocess=post,
        input_shape=pre.static_shape, max_batch=4,
    )
    return ort_dir, to_openvino(ort_dir, work)


@pytest.fixture
def bright_box_dir(make_model_dir, tmp_path):
    """``bright_box_dir(precision="fp32", **make_model_dir options)`` -> openvino model_dir (fast)."""

    count = iter(range(1000))

    def make(*, precision: str = "fp32", **options) -> Path:
        return to_openvino(make_model_dir(**options), tmp_path / f"ov{next(count)}", precision=precision)

    return make


# -- agreement with ONNX Runtime ------------------------------------------------------------
def test_fp32_agrees_with_onnxruntime_on_the_same_graph(fcos_dirs):
    ort_dir, ov_dir = fcos_dirs
    backend = create_backend(load_model_dir(ov_dir))
    assert isinstance(backend, OpenVINOBackend) and isinstance(backend, Backend)
    assert backend.inference_precision == "f32"  # not OpenVINO's bf16 default on AMX CPUs
    assert backend.compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    # 3 images: a batch size and original sizes (200..520 px) the warm-up (1 image) did not have
    batch, _ = preprocess_batch(synthetic_images(3, seed=7), small_preprocess())
    ours = backend.infer(batch)
    assert {k: (v.dtype, v.shape) for k, v in ours.items()} == {
        "num_dets": (np.int32, (3, 1)),
        "boxes": (np.float32, (3, 100, 4)),
        "scores": (np.float32, (3, 100)),
        "labels": (np.int32, (3, 100)),
    }
    reference = create_backend(load_model_dir(ort_dir)).infer(batch)
    assert_same_contract(ours, reference, atol=1e-3, rtol=1e-3, score_atol=1e-4, score_rtol=0, min_dets=10)


@pytest.mark.skipif(not CPU_HAS_BF16, reason="OpenVINO defaults to bf16 only on CPUs with bf16 support")
def test_openvinos_bf16_default_would_fail_that_comparison(fcos_dirs):
    """The check above has teeth: the same IR under OpenVINO's own default precision."""
    ort_dir, ov_dir = fcos_dirs
    compiled = ov.Core().compile_model(str(load_model_dir(ov_dir).model_path), "CPU")
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.bf16
    batch, _ = preprocess_batch(synthetic_images(3, seed=7), small_preprocess())
    results = compiled(batch)
    ours = {name: results[compiled.output(name)] for name in ("num_dets", "boxes", "scores", "labels")}
    reference = create_backend(load_model_dir(ort_dir)).infer(batch)
    with pytest.raises(AssertionError):
        assert_same_contract(ours, reference, atol=1e-3, rtol=1e-3, score_atol=1e-4, score_rtol=0, min_dets=10)


def test_detector_end_to_end_on_two_image_sizes(fcos_dirs):
    ort_dir, ov_dir = fcos_dirs
    images = synthetic_images(2, seed=3)
    assert images[0].shape != images[1].shape
    detector = Detector(ov_dir)
    assert detector.backend_name == "openvino" and detector.batch_size == 4
    ours = detector(images, channel_order="rgb")
    reference = Detector(ort_dir)(images, channel_order="rgb")
    assert [tuple(d.class_names) for d in ours] == [CLASSES, CLASSES]
    for d, image in zip(ours, images):  # boxes in original-image pixels, clipped
        assert len(d) > 0 and (d.boxes[:, 2] <= image.shape[1]).all() and (d.boxes[:, 3] <= image.shape[0]).all()
    for got, want in zip(ours, reference):
        # one-to-one: same label, IoU >= 0.999 (100 dense random-weight scores: too close to pair by score)
        matched, max_score_diff = match_detections(want, got, iou=0.999)
        assert matched == len(want) == len(got) and max_score_diff < 1e-4, (matched, len(want), max_score_diff)


def test_detector_on_openvino_does_not_import_torch(bright_box_dir):
    model_dir = bright_box_dir()
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        import sdk
        det = sdk.Detector({str(model_dir)!r})
        img = np.zeros((40, 60, 3), np.uint8)
        img[10:30, 20:40] = 255
        print(det(img).to_json())
        assert det.backend_name == "openvino" and "openvino" in sys.modules
        heavy = sorted(m for m in ("torch", "torchvision", "onnx", "tensorrt") if m in sys.modules)
        assert not heavy, heavy
        """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert json.loads(out)["labels"] == [0]


# -- compile options and contract dtypes --------------------------------------------------------
def test_compile_properties_and_batch_range(bright_box_dir, scene):
    backend = OpenVINOBackend(load_model_dir(bright_box_dir(max_batch=4)))
    assert str(backend.compiled.get_property("PERFORMANCE_HINT")) in ("LATENCY", "PerformanceMode.LATENCY")
    assert backend.input_dtype == np.uint8 and (backend.min_batch, backend.max_batch) == (1, 4)
    assert str(backend.compiled.input("images").get_partial_shape()) == "[1..4,3,64,96]"
    batch = np.stack([np.transpose(scene(64, 96, (10, 20, 30, 40)), (2, 0, 1))] * 4)
    out = backend.infer(batch.astype(np.float64))  # cast to what the graph takes
    assert out["num_dets"].ravel().tolist() == [1, 1, 1, 1]
    np.testing.assert_array_equal(out["boxes"][:, 0], [[10, 20, 30, 40]] * 4)

    tuned = create_backend(load_model_dir(bright_box_dir()), num_threads=1, num_streams=1, warmup=False)
    assert tuned.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert tuned.compiled.get_property("NUM_STREAMS") == 1


def test_int64_graph_outputs_come_back_as_contract_dtypes(make_model_dir, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    ort_dir = make_model_dir()
    graph = onnx.load(str(load_model_dir(ort_dir).model_path))
    for name in ("num_dets", "labels"):  # the graph ends in int64, as some exporters leave it
        producer = next(n for n in graph.graph.node if name in n.output)
        producer.output[list(producer.output).index(name)] = f"{name}32"
        graph.graph.node.append(helper.make_node("Cast", [f"{name}32"], [name], to=TensorProto.INT64))
        next(o for o in graph.graph.output if o.name == name).type.tensor_type.elem_type = TensorProto.INT64
    onnx.save(graph, str(tmp_path / "int64.onnx"))

    backend = OpenVINOBackend(load_model_dir(to_openvino(ort_dir, tmp_path, graph=tmp_path / "int64.onnx")))
    out = backend.infer(np.zeros((2, 3, 64, 96), np.uint8))
    assert (out["num_dets"].dtype, out["labels"].dtype) == (np.int32, np.int32)
    assert out["num_dets"].shape == (2, 1)


# -- precision ------------------------------------------------------------------------------
@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_precision_hint_is_always_set_explicitly(bright_box_dir, precision, caplog):
    with caplog.at_level(logging.INFO, logger="sdk.runtime.openvino_backend"):
        backend = OpenVINOBackend(load_model_dir(bright_box_dir(precision=precision)), warmup=False)
    # f32 runs exactly the graph's dtypes (QDQ layers in int8, fp16 upcast, bf16 layers in bf16)
    assert backend.inference_precision == "f32"
    assert ("computed in f32" in caplog.text) == (precision == "fp16")


def test_bf16_on_a_cpu_without_bf16_is_a_one_line_error():
    class NoBF16Core:
        def get_property(self, device, name):
            assert (device, name) == ("CPU", "OPTIMIZATION_CAPABILITIES")
            return ["FP32", "INT8", "BIN", "EXPORT_IMPORT"]

    for graph_has_bf16 in (False, True):
        with pytest.raises(BackendUnavailableError, match="needs a CPU with bfloat16 support") as info:
            ovb._inference_precision(NoBF16Core(), "bf16", graph_has_bf16)
        assert "\n" not in str(info.value)
    assert ovb._inference_precision(NoBF16Core(), "fp16", False) == ov.Type.f32


# -- bad uses -------------------------------------------------------------------------------
@pytest.mark.parametrize("device", ["cuda", "cuda:1"])
def test_gpu_device_is_a_one_line_error(bright_box_dir, device):
    loaded = load_model_dir(bright_box_dir())
    with pytest.raises(BackendUnavailableError, match="OpenVINO GPU plugins are not supported by this SDK yet") as info:
        create_backend(loaded, device=device)
    assert "\n" not in str(info.value)
    with pytest.raises(BackendUnavailableError, match="device must be"):
        create_backend(loaded, device="gpu")


def test_tampered_weights_fail_the_hash_check(bright_box_dir):
    model_dir = bright_box_dir()
    weights = model_dir / "model.bin"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelDirError, match="model.bin fails its sha256 check"):
        load_model_dir(model_dir)
    with pytest.raises(ModelDirError, match="model.bin fails its sha256 check"):
        Detector(model_dir)


def test_manifest_disagreeing_with_graph(bright_box_dir):
    with pytest.raises(ModelDirError, match="takes u8, the manifest says float32; re-export the model_dir"):
        OpenVINOBackend(load_model_dir(bright_box_dir(manifest_input_dtype="float32")))
    with pytest.raises(ModelDirError, match=r"lacks the detection outputs \['num_dets'\]"):
        OpenVINOBackend(load_model_dir(bright_box_dir(output_names=("count", "boxes", "scores", "labels"))))
    with pytest.raises(ModelDirError, match="fixed batch of 2 but the manifest says 1..4"):
        OpenVINOBackend(load_model_dir(bright_box_dir(fixed_batch=2)))


def test_missing_openvino_names_the_extra(bright_box_dir, monkeypatch):
    loaded = load_model_dir(bright_box_dir())
    monkeypatch.setitem(sys.modules, "openvino", None)  # import fails as if not installed
    monkeypatch.delitem(sys.modules, "sdk.runtime.openvino_backend")
    with pytest.raises(BackendUnavailableError, match=r"pip install 'sdk-detect\[openvino\]'"):
        create_backend(loaded)


def test_openvino_is_a_known_backend(bright_box_dir):
    loaded = load_model_dir(bright_box_dir())
    assert base._BACKEND_CLASSES["openvino"] == ("sdk.runtime.openvino_backend", "OpenVINOBackend")
    assert (loaded.manifest.backend, loaded.manifest.model_file) == ("openvino", "model.xml")
    assert set(loaded.manifest.files) == {"model.xml", "model.bin"}
    assert "openvino" in loaded.manifest.library_versions
