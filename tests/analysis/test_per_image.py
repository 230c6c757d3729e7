"""Per-image AP against pycocotools run on one-image datasets, and ``sdk analyze results``."""

from __future__ import annotations

import contextlib
import csv
import io
import json

import cv2
import pytest
from conftest import write_coco, result
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from sdk.analysis.per_image import per_image_ap, rank_images
from sdk.cli.main import main

CATS = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
IMAGES = [{"id": i, "file_name": f"{i}.png", "width": 100, "height": 100} for i in (1, 2, 3, 4)]
GTS = [
    {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40]},
    {"image_id": 2, "category_id": 1, "bbox": [10, 10, 40, 40]},
    {"image_id": 2, "category_id": 1, "bbox": [55, 55, 30, 30]},
    {"image_id": 2, "category_id": 2, "bbox": [5, 60, 30, 30]},
    {"image_id": 3, "category_id": 2, "bbox": [20, 20, 50, 50]},
]
RESULTS = [
    result(1, 1, [10, 10, 40, 40], 0.9),  # perfect
    result(2, 1, [12, 10, 40, 40], 0.8),  # IoU 0.905
    result(2, 1, [50, 50, 30, 30], 0.95),  # IoU 0.53 with the second box, scored above the better one
    result(2, 2, [70, 5, 20, 20], 0.7),  # on background
    result(2, 2, [5, 62, 30, 26], 0.6),  # IoU 0.867
    result(2, 1, [0, 0, 10, 10], 0.99),  # on background, scored first
    result(3, 1, [20, 20, 50, 50], 0.9),  # right box, wrong class
    result(4, 1, [0, 0, 50, 50], 0.9),  # an image without ground truth
]


def _coco_ap(ann_file, results, image_id):
    """COCOeval's AP@[.5:.95] and AP@.5 on a dataset of image ``image_id`` alone."""
    data = json.loads(ann_file.read_text())
    data["images"] = [i for i in data["images"] if i["id"] == image_id]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] == image_id]
    gt = COCO()
    gt.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes([r for r in results if r["image_id"] == image_id]), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats[0], evaluator.stats[1]


def test_per_image_ap_equals_pycocotools_on_each_image_alone(tmp_path):
    ann = write_coco(tmp_path / "ann.json", IMAGES, GTS, CATS)
    scores = per_image_ap(str(ann), RESULTS)
    for image_id in (1, 2, 3):
        ap, ap50 = _coco_ap(ann, RESULTS, image_id)
        assert scores[image_id].ap == pytest.approx(ap, abs=1e-12)
        assert scores[image_id].ap50 == pytest.approx(ap50, abs=1e-12)
    assert scores[1].ap == pytest.approx(1.0) and scores[3].ap == 0.0 and 0 < scores[2].ap < 0.9
    assert scores[4].ap is None and scores[4].num_dets == 1 and scores[4].num_gt == 0
    assert (scores[2].num_gt, scores[2].num_dets) == (3, 5)
    best, worst = rank_images(scores, topk=2)
    assert [s.image_id for s in best] == [1, 2] and [s.image_id for s in worst] == [3, 2]


def test_per_image_ap_of_a_known_overlap(tmp_path):
    # one ground truth, one detection with IoU 0.625: matched at IoU .50, .55, .60 only
    ann = write_coco(tmp_path / "ann.json", IMAGES[:1], [GTS[0]], CATS)
    scores = per_image_ap(ann, [result(1, 1, [10, 10, 40, 25], 0.5)])
    assert scores[1].ap == pytest.approx(0.3) and scores[1].ap50 == pytest.approx(1.0)


def test_analyze_results_cli(bright_model_dir, bright_dataset, tmp_path, capsys):
    out = tmp_path / "results"
    argv = ["analyze", "results", str(bright_model_dir), "--dataset", str(bright_dataset), "--out", str(out),
            "--topk", "2", "--no-progress"]
    assert main(argv) == 0
    with open(out / "per_image.csv") as fh:
        rows = {int(r["image_id"]): r for r in csv.DictReader(fh)}
    # the model finds each drawn box exactly: image 3's ground truth overlaps it with IoU 0.625,
    # image 4's has another class
    assert {i: float(r["ap"]) for i, r in rows.items()} == pytest.approx({1: 1.0, 2: 1.0, 3: 0.3, 4: 0.0})
    assert float(rows[3]["ap50"]) == 1.0 and rows[1]["num_dets"] == "1"
    assert sorted(p.name for p in (out / "best").iterdir()) == ["001_ap1.000_1.jpg", "002_ap1.000_2.jpg"]
    assert sorted(p.name for p in (out / "worst").iterdir()) == ["001_ap0.000_4.jpg", "002_ap0.300_3.jpg"]
    picture = cv2.imread(str(out / "worst" / "001_ap0.000_4.jpg"))
    assert picture.shape[1] == 2 * 4 * 96 + 6 and picture.shape[0] > 4 * 64  # ground truth | predictions, enlarged 4x
    summary = json.loads((out / "summary.json").read_text())
    assert summary["mean_image_ap"] == pytest.approx(0.575)
    assert "4 images ranked" in capsys.readouterr().out


def test_analyze_results_runs_a_checkpoint(tiny_checkpoint, tiny_shapes, tmp_path):
    out = tmp_path / "results"
    argv = ["analyze", "results", str(tiny_checkpoint), "--dataset", str(tiny_shapes / "annotations" / "val.json"),
            "--out", str(out), "--topk", "1", "--no-progress"]
    assert main(argv) == 0
    assert len(list((out / "best").glob("*.jpg"))) == 1 and (out / "per_image.csv").exists()


def test_analyze_results_bad_dataset_is_one_line(bright_model_dir, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["analyze", "results", str(bright_model_dir), "--dataset", str(bad), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1
