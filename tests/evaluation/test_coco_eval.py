"""COCO evaluation: perfect detections score 1, errors score less, labels map to ids by name."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdk.detections import Detections
from sdk.errors import DatasetError
from sdk.evaluation.coco_eval import METRIC_NAMES, evaluate_coco, write_coco_results

pytest.importorskip("pycocotools")

# non-contiguous ids, listed out of order; boxes of all three COCO area ranges
CATEGORIES = [{"id": 9, "name": "bird"}, {"id": 2, "name": "cat"}, {"id": 5, "name": "dog"}]
GT_BOXES = {  # image id -> [(category name, [x, y, w, h])]
    1: [("cat", [10, 10, 20, 20]), ("dog", [50, 40, 120, 110])],
    2: [("bird", [5, 5, 60, 50]), ("cat", [100, 100, 30, 25]), ("bird", [200, 20, 8, 9])],
    3: [("dog", [30, 30, 50, 70])],
    4: [],
}
# a model whose labels are in a different order than the category ids, with a class
# the dataset does not have
MODEL_CLASSES = ("__background__", "dog", "zebra", "bird", "cat")


@pytest.fixture
def ann_file(tmp_path):
    ids = {c["name"]: c["id"] for c in CATEGORIES}
    images = [{"id": i, "file_name": f"{i}.jpg", "width": 320, "height": 240} for i in GT_BOXES]
    anns = [
        {"id": n, "image_id": i, "category_id": ids[name], "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
        for n, (i, name, box) in enumerate(((i, name, box) for i, objs in GT_BOXES.items() for name, box in objs), 1)
    ]
    path = tmp_path / "gt.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return path


def _gt_as_detections(shift=0.0, only=None):
    """Ground truth as model output (xyxy boxes); boxes of class ``only`` (or all) shifted
    by ``shift`` of their width."""
    out = {}
    for image_id, objs in GT_BOXES.items():
        boxes, labels = [], []
        for name, (x, y, w, h) in objs:
            dx = shift * w if only in (None, name) else 0.0
            boxes.append([x + dx, y, x + dx + w, y + h])
            labels.append(MODEL_CLASSES.index(name))
        scores = np.linspace(0.9, 0.5, len(boxes)) if boxes else np.zeros(0)
        out[image_id] = Detections(np.array(boxes, np.float32).reshape(-1, 4), scores, labels, MODEL_CLASSES)
    return out


def test_ground_truth_fed_back_scores_one(ann_file):
    metrics = evaluate_coco(ann_file, _gt_as_detections())
    assert set(metrics) == set(METRIC_NAMES)
    for name in METRIC_NAMES:
        if name != "bbox_AR_1":
            assert metrics[name] == pytest.approx(1.0), name
    # one detection per image finds one of image 2's two birds: recall cat 1, dog 1, bird 1/2
    assert metrics["bbox_AR_1"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_shifted_boxes_score_less(ann_file):
    metrics = evaluate_coco(ann_file, _gt_as_detections(shift=0.15))
    assert metrics["bbox_mAP_50"] == pytest.approx(1.0)  # IoU 0.74 still matches at 0.5
    assert metrics["bbox_mAP_75"] < 0.5
    assert 0.2 < metrics["bbox_mAP"] < 0.9


def test_classwise_table_by_name(ann_file):
    metrics = evaluate_coco(ann_file, _gt_as_detections(shift=0.3, only="dog"), classwise=True)
    classwise = metrics["classwise"]
    assert list(classwise) == ["cat", "dog", "bird"]  # category id order
    assert classwise["cat"] == pytest.approx(1.0) and classwise["bird"] == pytest.approx(1.0)
    assert classwise["dog"] < 0.6
    assert metrics["bbox_mAP"] == pytest.approx(np.mean(list(classwise.values())))


def test_detections_of_classes_absent_from_the_dataset_are_ignored(ann_file, caplog):
    dets = _gt_as_detections()
    extra = Detections([[0, 0, 50, 50], [60, 60, 90, 90]], [0.99, 0.98], [2, 0], MODEL_CLASSES)  # zebra, background
    dets[1] = Detections(
        np.concatenate([dets[1].boxes, extra.boxes]), np.concatenate([dets[1].scores, extra.scores]),
        np.concatenate([dets[1].labels, extra.labels]), MODEL_CLASSES,
    )
    metrics = evaluate_coco(ann_file, dets)
    assert metrics["bbox_mAP"] == pytest.approx(1.0)
    assert any("ignored 2 detections" in r.getMessage() for r in caplog.records)


def test_wrong_class_scores_zero_for_it(ann_file):
    dets = _gt_as_detections()
    cat, bird = MODEL_CLASSES.index("cat"), MODEL_CLASSES.index("bird")
    for d in dets.values():
        d.labels = np.where(d.labels == cat, bird, d.labels)
    metrics = evaluate_coco(ann_file, dets, classwise=True)
    assert metrics["classwise"]["cat"] == 0.0 and metrics["classwise"]["dog"] == pytest.approx(1.0)


def test_no_detections_give_zeros_not_a_crash(ann_file, capsys):
    for dets in ({}, {i: Detections.empty(MODEL_CLASSES) for i in GT_BOXES}):
        metrics = evaluate_coco(ann_file, dets, classwise=True)
        assert metrics["bbox_mAP"] == 0.0 and metrics["bbox_AR_100"] == 0.0
        assert metrics["classwise"] == {"cat": 0.0, "dog": 0.0, "bird": 0.0}
    assert capsys.readouterr().out == ""  # pycocotools' prints are silenced


def test_image_subset_and_unknown_images(ann_file):
    dets = _gt_as_detections()
    del dets[2]
    assert evaluate_coco(ann_file, dets)["bbox_mAP"] < 1.0  # image 2's objects count as missed
    assert evaluate_coco(ann_file, dets, image_ids=[1, 3, 4])["bbox_mAP"] == pytest.approx(1.0)
    dets[42] = Detections.empty(MODEL_CLASSES)
    with pytest.raises(DatasetError, match="42"):
        evaluate_coco(ann_file, dets)


def test_matches_pycocotools_on_the_written_results_file(ann_file, tmp_path):
    """Our name mapping + results file, evaluated by plain pycocotools, give the same numbers."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(0)
    dets = _gt_as_detections()
    for image_id, d in dets.items():
        noisy = d.boxes + rng.normal(0, 4, d.boxes.shape).astype(np.float32)
        spurious = np.array([[0, 0, 40, 40]], np.float32)
        dets[image_id] = Detections(np.concatenate([noisy, spurious]), np.concatenate([d.scores, [0.7]]),
                                    np.concatenate([d.labels, [MODEL_CLASSES.index("cat")]]), MODEL_CLASSES)
    results_file = write_coco_results(tmp_path / "res.json", dets, {"cat": 2, "dog": 5, "bird": 9})
    results = json.loads(results_file.read_text())
    assert {r["category_id"] for r in results} == {2, 5, 9}
    gt = COCO(str(ann_file))
    reference = COCOeval(gt, gt.loadRes(str(results_file)), iouType="bbox")
    reference.evaluate()
    reference.accumulate()
    reference.summarize()
    metrics = evaluate_coco(ann_file, dets)
    np.testing.assert_allclose([metrics[n] for n in METRIC_NAMES], reference.stats)
    assert 0.0 < metrics["bbox_mAP"] < 1.0


def test_annotations_without_area_or_iscrowd_are_accepted(tmp_path):
    gt = {"images": [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 100}],
          "annotations": [{"id": 1, "image_id": 1, "category_id": 4, "bbox": [10, 10, 30, 30]}],
          "categories": [{"id": 4, "name": "cat"}]}
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    dets = {1: Detections([[10, 10, 40, 40]], [0.9], [1], ("__background__", "cat"))}
    assert evaluate_coco(path, dets)["bbox_mAP"] == pytest.approx(1.0)


def test_bad_annotation_files(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        evaluate_coco(tmp_path / "missing.json", {})
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(DatasetError, match="not valid JSON"):
        evaluate_coco(bad, {})
