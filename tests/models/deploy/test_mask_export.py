"""Exported Mask R-CNN (both custom-op flavors) == eager, masks included.

``maskrcnn_tiny`` with random weights is exported through the ``sdk export`` pipeline
(traced at batch 2 on the 224x288 input) and run by ``sdk.Detector`` on ONNX Runtime
on a batch of 3 images of other original sizes; the eager checkpoint runs on the same
images through ``EagerPredictor``. Every eager detection with an isolated score has
its exported twin (same label, box) whose pasted mask overlaps it with IoU >= 0.95.
"""

from __future__ import annotations

import numpy as np
import pytest
from deploy_support import CLASSES, small_preprocess

from sdk import Detector
from sdk.data.synthetic import synthetic_images
from sdk.manifest import load_model_dir


def _mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@pytest.mark.parametrize("flavor", ["onnxruntime", "tensorrt"])
def test_exported_masks_match_eager(flavor, tiny_checkpoint, exported_model_dir):
    from sdk.engine.evaluate import EagerPredictor

    _, model = tiny_checkpoint("maskrcnn_tiny")
    model_dir = exported_model_dir("maskrcnn_tiny", flavor)
    manifest = load_model_dir(model_dir).manifest
    assert manifest.task == "instance_segmentation"
    assert [(o.name, o.shape) for o in manifest.outputs][-1] == ("masks", (-1, 100, 28, 28))

    images = synthetic_images(3, seed=5)  # batch 3 (traced at 2), original sizes != 224x288
    exported = Detector(model_dir)(images, channel_order="rgb")
    reference = EagerPredictor(model, preprocess=small_preprocess(), classes=CLASSES, max_det=100)(
        images, channel_order="rgb")
    compared = 0
    for ours, ref, image in zip(exported, reference, images):
        assert ours.masks.shape == (len(ours), *image.shape[:2]) and ours.masks.dtype == np.bool_
        assert len(ours) == len(ref) >= 5
        gaps = np.abs(ref.scores[:, None] - ref.scores[None, :]) + np.eye(len(ref))
        for i in np.flatnonzero(gaps.min(axis=1) > 1e-4):  # isolated scores: an unambiguous twin
            j = int(np.argmin(np.abs(ours.scores - ref.scores[i])))
            assert ours.labels[j] == ref.labels[i]
            np.testing.assert_allclose(ours.boxes[j], ref.boxes[i], atol=1e-2)
            if ref.masks[i].sum() > 20:
                assert _mask_iou(ours.masks[j], ref.masks[i]) >= 0.95, (i, j)
                compared += 1
    assert compared >= 10, "too few non-empty masks compared"


def test_masks_on_onnxruntime_import_no_torch(exported_model_dir, tmp_path):
    import subprocess
    import sys
    import textwrap

    import cv2

    model_dir = exported_model_dir("maskrcnn_tiny", "onnxruntime")
    image = tmp_path / "image.png"
    cv2.imwrite(str(image), synthetic_images(1, seed=3)[0])
    code = textwrap.dedent(f"""
        import sys
        import sdk
        (det,) = sdk.Detector({str(model_dir)!r})([{str(image)!r}])
        heavy = sorted(m for m in ("torch", "torchvision", "onnx") if m in sys.modules)
        assert not heavy, heavy
        assert det.masks is not None and det.masks.shape[0] == len(det) > 0
        print(len(det))
        """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
