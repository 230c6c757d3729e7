"""``sdk infer`` on an instance segmentation model: each JSON carries one COCO RLE per
detection, equal to ``Detector``'s masks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

import sdk.models
from sdk import Detector
from sdk.checkpoint import CheckpointMeta, save_checkpoint
from sdk.cli.main import main
from sdk.preprocess import Preprocess

CLASSES = ("__background__", "a", "b")


def test_infer_json_carries_masks(tmp_path):
    pytest.importorskip("pycocotools")
    from sdk.masks import decode_rle

    torch.manual_seed(0)
    model = sdk.models.build_model("maskrcnn_tiny", num_classes=len(CLASSES), box_detections_per_img=10)
    meta = CheckpointMeta(model_name="maskrcnn_tiny", num_classes=len(CLASSES), classes=CLASSES,
                          preprocess=Preprocess(mode="letterbox", size=(96, 128)),
                          postprocess={"score_thr": 0.0, "iou_thr": 0.5, "max_det": 10})
    checkpoint = save_checkpoint(tmp_path / "mask.pt", meta=meta, state_dict=model.state_dict())
    image = np.random.default_rng(1).integers(0, 256, (70, 110, 3), np.uint8)
    cv2.imwrite(str(tmp_path / "photo.png"), image)
    out = tmp_path / "out"
    assert main(["infer", str(checkpoint), str(tmp_path / "photo.png"), "--out-dir", str(out), "--no-draw",
                 "--score-thr", "0", "--no-progress"]) == 0
    record = json.loads((out / "photo.json").read_text())
    expected = Detector(checkpoint, score_thr=0.0)(image)
    assert len(expected) > 0 and len(record["masks"]) == len(record["boxes"]) == len(expected)
    for encoded, mask in zip(record["masks"], expected.masks):
        assert encoded["size"] == [70, 110]
        np.testing.assert_array_equal(decode_rle(encoded), mask)
