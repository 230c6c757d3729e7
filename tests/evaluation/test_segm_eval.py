"""Mask (segm) metrics on a hand-made case whose AP is worked out by hand.

Two images, one 10 x 40 object each (area 400: "small"), one class per image. The
detections' boxes are exact (bbox AP 1), their masks are left parts of the objects:
mask IoU 210/400 = 0.525 (a match at IoU threshold 0.50 only: AP 1/10) and 310/400 =
0.775 (a match at 0.50 ... 0.75: AP 6/10). Mask mAP = (0.1 + 0.6) / 2 = 0.35.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdk.detections import Detections
from sdk.evaluation.coco_eval import evaluate_coco, evaluate_results, write_coco_results
from sdk.masks import decode_rle, encode_rle

pytest.importorskip("pycocotools")

H, W = 60, 80
CLASSES = ("__background__", "bar", "plank")
OBJECT = (10, 20, 50, 30)  # x1, y1, x2, y2 (pixel edges) in both images


def _block(x1, y1, x2, y2):
    mask = np.zeros((H, W), bool)
    mask[y1:y2, x1:x2] = True
    return mask


@pytest.fixture
def ann_file(tmp_path):
    x1, y1, x2, y2 = OBJECT
    polygon = [[x1, y1, x2, y1, x2, y2, x1, y2]]  # along the pixel edges: exactly the block
    anns = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [x1, y1, x2 - x1, y2 - y1], "area": 400, "iscrowd": 0,
         "segmentation": polygon},
        {"id": 2, "image_id": 2, "category_id": 2, "bbox": [x1, y1, x2 - x1, y2 - y1], "area": 400, "iscrowd": 0,
         "segmentation": encode_rle(_block(*OBJECT))},
    ]
    images = [{"id": i, "file_name": f"{i}.png", "width": W, "height": H} for i in (1, 2)]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "bar"}, {"id": 2, "name": "plank"}]}))
    return path


def _detections(columns: int, label: int) -> Detections:
    x1, y1, _, y2 = OBJECT
    return Detections(np.array([OBJECT], np.float32), np.array([0.9]), np.array([label]), CLASSES,
                      masks=_block(x1, y1, x1 + columns, y2)[None])


def test_segm_metrics_of_a_hand_made_case(ann_file):
    detections = {1: _detections(21, 1), 2: _detections(31, 2)}
    metrics = evaluate_coco(ann_file, detections, classwise=True)
    assert metrics["bbox_mAP"] == pytest.approx(1.0)
    assert metrics["segm_mAP"] == pytest.approx(0.35)
    assert metrics["segm_mAP_50"] == pytest.approx(1.0)
    assert metrics["segm_mAP_75"] == pytest.approx(0.5)  # only the 0.775 mask matches at 0.75
    assert metrics["segm_mAP_s"] == pytest.approx(0.35) and metrics["segm_mAP_m"] == -1
    assert metrics["segm_classwise"] == pytest.approx({"bar": 0.1, "plank": 0.6})
    assert metrics["classwise"] == pytest.approx({"bar": 1.0, "plank": 1.0})


def test_perfect_masks_score_one_and_box_only_detections_get_no_segm(ann_file):
    perfect = {i: _detections(40, i) for i in (1, 2)}
    assert evaluate_coco(ann_file, perfect)["segm_mAP"] == pytest.approx(1.0)
    boxes_only = {i: Detections(d.boxes, d.scores, d.labels, CLASSES) for i, d in perfect.items()}
    assert "segm_mAP" not in evaluate_coco(ann_file, boxes_only)


def test_results_file_carries_rle_masks_and_scores_the_same(ann_file, tmp_path):
    detections = {1: _detections(21, 1), 2: _detections(31, 2)}
    path = write_coco_results(tmp_path / "results.json", detections, {"bar": 1, "plank": 2})
    results = json.loads(path.read_text())
    assert [r["segmentation"]["size"] for r in results] == [[H, W], [H, W]]
    np.testing.assert_array_equal(decode_rle(results[0]["segmentation"]), detections[1].masks[0])
    assert evaluate_results(ann_file, results)["segm_mAP"] == pytest.approx(0.35)
