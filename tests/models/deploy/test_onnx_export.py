"""Exported ONNX (both custom-op flavors) == eager checkpoint, per tiny family.

Each (family, flavor) is exported once through the ``sdk export`` pipeline (traced at
batch 2, dynamic batch 1..8) and run through ``sdk.Detector`` on ONNX Runtime (the
TensorRT flavor's ``sdk::`` nodes through ``sdk.trt_plugins.ort_ops``) on a batch of
3 images of other original sizes, against the eager model with the same
preprocessing. Batched results must equal one-image results (8 images of different
sizes), and the ONNX Runtime path must not import torch.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import onnx
import pytest
from deploy_support import CLASSES, TINY_MODELS, assert_same_contract, detections_as_contract, small_preprocess

from sdk import Detector
from sdk.data.synthetic import synthetic_images
from sdk.manifest import load_model_dir

FLAVORS = ("onnxruntime", "tensorrt")


def _eager(model, images):
    from sdk.engine.evaluate import EagerPredictor

    max_det = int(model_max_det(model))
    return EagerPredictor(model, preprocess=small_preprocess(), classes=CLASSES, max_det=max_det)(images, channel_order="rgb")


def model_max_det(model) -> int:
    return getattr(model, "detections_per_img", None) or model.roi_heads.detections_per_img


# Each export takes 10-30 s on a small CPU: by default every family in the onnxruntime
# flavor plus Faster and Mask R-CNN (both custom ops) in the tensorrt flavor; the other tensorrt
# flavor exports run with -m slow.
CASES = [
    *[(name, "onnxruntime") for name in TINY_MODELS],
    *[pytest.param(name, "tensorrt", marks=[] if "rcnn" in name else [pytest.mark.slow])
      for name in TINY_MODELS],
]


@pytest.mark.parametrize(("name", "flavor"), CASES)
def test_exported_model_matches_eager(name, flavor, tiny_checkpoint, exported_model_dir):
    _, model = tiny_checkpoint(name)
    model_dir = exported_model_dir(name, flavor)
    images = synthetic_images(3, seed=7)  # original sizes 200..520 px, none the 224x288 input
    assert len({im.shape for im in images}) == 3

    detector = Detector(model_dir)
    exported = detector(images, channel_order="rgb")
    reference = _eager(model, images)
    assert_same_contract(detections_as_contract(exported), detections_as_contract(reference), min_dets=5)
    assert all(tuple(d.class_names) == CLASSES for d in exported)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_graph_ops_per_flavor(flavor, exported_model_dir):
    model_dir = exported_model_dir("fasterrcnn_tiny", flavor)
    loaded = load_model_dir(model_dir)
    graph = onnx.load(str(loaded.model_path))
    custom = sorted({n.op_type for n in graph.graph.node if n.domain == "sdk"})
    if flavor == "tensorrt":
        assert custom == ["BatchedNMS", "MultiLevelRoIAlign"]
        assert set(loaded.manifest.plugins) == {"BatchedNMS", "MultiLevelRoIAlign"}
    else:
        assert custom == [] and loaded.manifest.plugins == ()
        assert {"NonMaxSuppression", "RoiAlign"} <= {n.op_type for n in graph.graph.node}
    manifest = loaded.manifest
    assert (manifest.input.dtype, manifest.input.shape, manifest.input.max_batch) == ("uint8", (-1, 3, 224, 288), 8)
    assert manifest.flavor == flavor and manifest.classes == CLASSES
    batch_dim = graph.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # symbolic, not the traced batch of 2


@pytest.mark.parametrize("name", TINY_MODELS)
def test_wiring_batch_equals_single_images(name, exported_model_dir):
    detector = Detector(exported_model_dir(name, "onnxruntime"))
    images = synthetic_images(8, seed=11)
    batched = detector(images, channel_order="rgb")
    for image, together in zip(images, batched):
        alone = detector(image, channel_order="rgb")
        assert len(alone) == len(together) > 0
        np.testing.assert_array_equal(alone.labels, together.labels)
        np.testing.assert_allclose(alone.scores, together.scores, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(alone.boxes, together.boxes, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("name", ["fcos_tiny", "rtmdet_nano"])
def test_exported_detector_does_not_import_torch(name, exported_model_dir, tmp_path):
    model_dir = exported_model_dir(name, "onnxruntime")
    image = tmp_path / "image.png"
    import cv2

    cv2.imwrite(str(image), synthetic_images(1, seed=3)[0])
    code = textwrap.dedent(f"""
        import sys
        import sdk
        detections = sdk.Detector({str(model_dir)!r})([{str(image)!r}, {str(image)!r}])
        heavy = sorted(m for m in ("torch", "torchvision", "onnx") if m in sys.modules)
        assert not heavy, heavy
        print(detections[0].to_json())
        """)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert len(json.loads(out)["scores"]) > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", ["retinanet_resnet50_fpn", "fasterrcnn_resnet50_fpn"])
def test_full_size_export_matches_eager(name, tmp_path):
    """A torchvision-sized model (random weights) at the small 224x288 input, ONNX Runtime flavor."""
    import torch

    from deploy_support import save_random_checkpoint
    from sdk.converters.export import ExportOptions, export_checkpoint

    checkpoint, model = save_random_checkpoint(tmp_path / "model.pt", name)
    torch.set_num_threads(1)
    model_dir = export_checkpoint(checkpoint, tmp_path / "model_dir", ExportOptions(max_batch=4))
    # noise at the input size: on letterbox padding or resampled (smoothed) noise, random
    # R50 features saturate every score to 1.0, which would leave nothing to compare
    # (the tiny models cover other original sizes)
    rng = np.random.default_rng(7)
    images = [rng.integers(0, 256, (224, 288, 3), dtype=np.uint8) for _ in range(3)]
    exported = Detector(model_dir)(images, channel_order="rgb")
    reference = _eager(model, images)
    # 50 random-weight layers: ONNX Runtime's and PyTorch's float32 convolutions drift by
    # ~1e-4 in score, more than the gaps between the hundreds of near-equal random scores,
    # so compare as `sdk verify` does: one-to-one matches (same label, IoU >= 0.99)
    from sdk.engine.verify import match_detections

    for ours, ref in zip(exported, reference):
        assert len(ref) >= 5 and len(ours) == len(ref)
        matched, max_diff = match_detections(ref, ours, iou=0.99)
        assert matched >= 0.95 * len(ref) and max_diff < 1e-3, (matched, len(ref), max_diff)
