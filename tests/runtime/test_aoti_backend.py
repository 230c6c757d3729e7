"""``sdk export --backend aoti`` end to end on CPU: compile, package, load, run.

One AOTInductor compile (module fixture, ~15-30 s on two cores) of the tiny network
in ``tests/converters/tiny_deploy.py``; the package runs batch sizes other than the
example batch (2) it was exported with and must equal the eager module.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "converters"))  # the shared tiny network
from tiny_deploy import POSTPROCESS, PREPROCESS, TinyDeploy, random_images  # noqa: E402

from sdk import Detector  # noqa: E402
from sdk.converters.aoti_export import export_aoti_model_dir  # noqa: E402
from sdk.errors import BackendUnavailableError  # noqa: E402
from sdk.manifest import load_model_dir  # noqa: E402
from sdk.postprocess import decode_outputs  # noqa: E402
from sdk.preprocess import preprocess_batch  # noqa: E402
from sdk.runtime.aoti_backend import AOTIBackend  # noqa: E402
from sdk.runtime.base import create_backend  # noqa: E402

CLASSES = ("a", "b", "c")
MAX_BATCH = 4


@pytest.fixture(scope="module")
def aoti_dir(tmp_path_factory):
    torch.set_num_threads(1)  # the machine is shared; compile time barely changes
    return export_aoti_model_dir(
        TinyDeploy(), tmp_path_factory.mktemp("aoti") / "model_dir", model_name="tiny", classes=CLASSES,
        preprocess=PREPROCESS, postprocess=POSTPROCESS, max_batch=MAX_BATCH,
    )


def eager(images: torch.Tensor) -> dict[str, np.ndarray]:
    with torch.no_grad():
        outputs = TinyDeploy()(images)
    return {name: t.numpy() for name, t in zip(("num_dets", "boxes", "scores", "labels"), outputs)}


def assert_same_detections(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    np.testing.assert_array_equal(got["num_dets"], want["num_dets"])
    np.testing.assert_array_equal(got["labels"], want["labels"])
    np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)
    np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-4)


def test_manifest_records_backend_precision_and_ops(aoti_dir):
    manifest = json.loads((aoti_dir / "manifest.json").read_text())
    assert (manifest["backend"], manifest["flavor"], manifest["precision"]) == ("aoti", None, "fp32")
    assert manifest["plugins"] == ["sdk::batched_nms"]
    assert manifest["model_file"] == "model.pt2" and (aoti_dir / "model.pt2").is_file()
    assert manifest["input"] | {"shape": None} == {
        "name": "images", "dtype": "uint8", "layout": "NCHW", "shape": None, "min_batch": 1, "max_batch": MAX_BATCH
    }
    assert manifest["input"]["shape"] == [-1, 3, *PREPROCESS.size]


@pytest.mark.parametrize("batch", [1, 3, MAX_BATCH])
def test_package_matches_eager_on_other_batch_sizes(aoti_dir, batch):
    backend = create_backend(load_model_dir(aoti_dir), device="cpu")
    assert isinstance(backend, AOTIBackend) and backend.input_dtype == np.uint8
    images = random_images(batch, seed=10 + batch)
    got = backend.infer(images.numpy())
    assert {k: (v.dtype, v.shape) for k, v in got.items()} == {
        "num_dets": (np.int32, (batch, 1)), "boxes": (np.float32, (batch, 10, 4)),
        "scores": (np.float32, (batch, 10)), "labels": (np.int32, (batch, 10)),
    }
    assert got["num_dets"].max() > 0, "the test input should produce detections"
    assert_same_detections(got, eager(images))


def test_detector_on_aoti_model_dir_matches_eager_pipeline(aoti_dir):
    rng = np.random.default_rng(0)
    sizes = [(40, 30), (17, 90), (64, 64), (20, 20), (9, 50)]
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in sizes]
    det = Detector(aoti_dir)
    assert det.backend_name == "aoti" and det.batch_size == MAX_BATCH
    got = det(images, channel_order="rgb")  # 5 images: a full chunk of 4 and one of 1
    batch, records = preprocess_batch(images, PREPROCESS)
    want = decode_outputs(eager(torch.from_numpy(batch)), records, CLASSES)
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g.boxes, w.boxes, atol=1e-3)
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-5)
        np.testing.assert_array_equal(g.labels, w.labels)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised without a GPU")
def test_cuda_device_without_gpu_fails_with_one_clear_error(aoti_dir):
    with pytest.raises(BackendUnavailableError, match="no CUDA GPU"):
        AOTIBackend(load_model_dir(aoti_dir), device="cuda")


@pytest.mark.gpu
def test_cpu_package_refuses_cuda_device(aoti_dir):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    with pytest.raises(BackendUnavailableError, match="compiled for cpu"):
        AOTIBackend(load_model_dir(aoti_dir), device="cuda")


@pytest.mark.gpu
def test_cuda_fp16_package_keeps_detections(tmp_path):
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    model_dir = export_aoti_model_dir(
        TinyDeploy(), tmp_path / "fp16", model_name="tiny", classes=CLASSES, preprocess=PREPROCESS,
        postprocess=POSTPROCESS, max_batch=MAX_BATCH, device="cuda", fp16=True,
    )
    backend = AOTIBackend(load_model_dir(model_dir), device="cuda")
    images = random_images(3, seed=5)
    got, want = backend.infer(images.numpy()), eager(images)
    np.testing.assert_allclose(got["num_dets"], want["num_dets"], atol=2)  # fp16 may flip a near-threshold score
    assert got["boxes"].dtype == np.float32 and got["scores"].dtype == np.float32


@pytest.mark.slow
def test_sdk_export_aoti_of_a_real_tiny_detector_matches_its_checkpoint(tmp_path):
    # ~2 minutes on two cores: AOTInductor compiles the whole RetinaNet graph
    from sdk.checkpoint import CheckpointMeta, save_checkpoint
    from sdk.converters.export import ExportOptions, export_checkpoint
    from sdk.models import build_model, get_model_spec

    torch.set_num_threads(1)
    torch.manual_seed(0)
    name = "retinanet_tiny"
    classes = ("__background__", "a", "b")
    meta = CheckpointMeta(
        model_name=name, num_classes=3, classes=classes,
        preprocess=dataclasses.replace(get_model_spec(name).default_preprocess, size=(128, 128)),
        # an untrained head scores ~0.01 (focal-loss prior): a low threshold keeps detections to compare
        postprocess={"score_thr": 0.005, "iou_thr": 0.5, "max_det": 20}, model_overrides={},
    )
    weights = build_model(name, num_classes=3).state_dict()
    checkpoint = save_checkpoint(tmp_path / "tiny.pt", meta=meta, state_dict=weights)
    model_dir = export_checkpoint(checkpoint, tmp_path / "aoti", ExportOptions(backend="aoti", max_batch=4))
    from sdk.engine.verify import default_checkpoint

    assert default_checkpoint(model_dir) == checkpoint  # export.json: `sdk verify` needs no --checkpoint
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(120, 200), (160, 90), (50, 50)]]
    exported = Detector(model_dir)(images)
    reference = Detector(checkpoint)(images)
    assert sum(len(d.scores) for d in reference) > 0
    for got, want in zip(exported, reference, strict=True):
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-4)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-2)
        np.testing.assert_array_equal(got.labels, want.labels)


def test_wiring_aoti_export_packages_export_json(tmp_path, monkeypatch):
    """Wiring (the compile is replaced): the aoti exporter hands ``export.json``, naming
    the source checkpoint, to the model_dir writer, as the ONNX-based exporters do."""
    import json

    from sdk.converters import aoti_export
    from sdk.converters.export import ExportOptions

    seen = {}

    def fake_model_dir(deploy, out_dir, **kwargs):
        seen["export.json"] = json.loads(kwargs["extra_files"][0].read_text())
        return out_dir

    monkeypatch.setattr(aoti_export, "export_aoti_model_dir", fake_model_dir)
    monkeypatch.setattr("sdk.models.deploy.build_deploy_module", lambda model, **kw: model)
    checkpoint = tmp_path / "model.pt"
    aoti_export.export_checkpoint_aoti(torch.nn.Identity(), SimpleMeta(), tmp_path / "out",
                                       ExportOptions(backend="aoti"), checkpoint)
    assert seen["export.json"]["source_checkpoint"] == str(checkpoint.resolve())


class SimpleMeta:
    model_name, classes, postprocess = "tiny", ("__background__", "a"), {"score_thr": 0.1, "iou_thr": 0.5, "max_det": 5}
    preprocess = None
