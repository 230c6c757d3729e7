"""The confusion matrix on constructed detections, and ``sdk analyze confusion``."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sdk.analysis.confusion import box_iou, image_confusion
from sdk.cli.main import main
from sdk.detections import Detections

NAMES = ("a", "b", "c")


def dets(rows):
    """Detections from (x1, y1, x2, y2, score, label) rows."""
    rows = np.asarray(rows, np.float32).reshape(-1, 6)
    return Detections(rows[:, :4], rows[:, 4], rows[:, 5].astype(np.int64), NAMES)


def test_box_iou_by_hand():
    iou = box_iou([[0, 0, 10, 10], [5, 0, 15, 10]], [[0, 0, 10, 10], [20, 20, 30, 30], [0, 0, 10, 5]])
    np.testing.assert_allclose(iou, [[1, 0, 0.5], [50 / 150, 0, 25 / 125]])


def test_confusion_counts_of_a_constructed_image():
    gt = dets([[0, 0, 10, 10, 1, 0],    # a: found by an a
               [20, 0, 30, 10, 1, 1],   # b: found only as c
               [40, 0, 50, 10, 1, 2],   # c: found by a c and by an a
               [60, 0, 70, 10, 1, 2]])  # c: missed
    pred = dets([[0, 0, 10, 10, 0.9, 0],    # TP a
                 [20, 0, 30, 10, 0.8, 2],   # b seen as c
                 [40, 0, 50, 10, 0.7, 2],   # TP c
                 [41, 0, 51, 10, 0.6, 0],   # c seen as a (IoU 0.82)
                 [80, 0, 90, 10, 0.5, 1],   # b on background
                 [0, 0, 10, 10, 0.2, 1]])   # below the score threshold
    m = image_confusion(gt, pred, 3, iou_thr=0.5, score_thr=0.3)
    expected = np.array([
        # a  b  c  bg   (predicted)
        [1, 0, 0, 0],  # gt a
        [0, 0, 1, 1],  # gt b: seen as c, and missed (no b found it)
        [1, 0, 1, 1],  # gt c: one found, one missed; one seen as a
        [0, 1, 0, 0],  # background: the b on nothing
    ])
    np.testing.assert_array_equal(m, expected)
    # a stricter IoU: the c-as-a detection (IoU 0.82) no longer overlaps anything
    strict = image_confusion(gt, pred, 3, iou_thr=0.85, score_thr=0.3)
    assert strict[2, 0] == 0 and strict[3, 0] == 1
    # a lower score threshold admits the 0.2 b on the a: [a, b] and no miss of a
    low = image_confusion(gt, pred, 3, iou_thr=0.5, score_thr=0.1)
    assert low[0, 1] == 1 and low[0, 3] == 0
    # a duplicate c on the found c counts twice, unless per-class NMS removes it first
    dup = dets(np.concatenate([pred.boxes, pred.scores[:, None], pred.labels[:, None]], 1).tolist()
               + [[40, 1, 50, 10, 0.65, 2]])
    assert image_confusion(gt, dup, 3, iou_thr=0.5, score_thr=0.3)[2, 2] == 2
    np.testing.assert_array_equal(image_confusion(gt, dup, 3, iou_thr=0.5, score_thr=0.3, nms_iou_thr=0.5), expected)


def test_confusion_with_no_detections_and_no_ground_truth():
    empty = Detections.empty(NAMES)
    np.testing.assert_array_equal(image_confusion(dets([[0, 0, 5, 5, 1, 1]]), empty, 3)[:, 3], [0, 1, 0, 0])
    np.testing.assert_array_equal(image_confusion(empty, dets([[0, 0, 5, 5, 0.9, 2]]), 3)[3], [0, 0, 1, 0])


def test_analyze_confusion_cli(bright_model_dir, bright_dataset, tmp_path, capsys):
    out = tmp_path / "confusion"
    argv = ["analyze", "confusion", str(bright_model_dir), "--dataset", str(bright_dataset), "--out", str(out),
            "--no-progress"]
    assert main(argv) == 0
    with open(out / "confusion_matrix.csv") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["gt \\ pred", "red", "green", "blue", "background"]
    counts = np.array([[int(v) for v in r[1:]] for r in rows[1:]])
    # images 1-3 found; image 4 is drawn red but labelled green: green seen as red, and missed
    np.testing.assert_array_equal(counts, [[1, 0, 0, 0], [1, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 0]])
    assert (out / "confusion_matrix.png").stat().st_size > 1000
    # at IoU 0.7 the blue detection (IoU 0.625) is a false positive and its ground truth a miss
    assert main(argv + ["--iou-thr", "0.7"]) == 0
    with open(out / "confusion_matrix.csv") as fh:
        counts = np.array([[int(v) for v in r[1:]] for r in list(csv.reader(fh))[1:]])
    assert counts[2, 3] == 1 and counts[3, 2] == 1 and counts[2, 2] == 0
    assert "background" in capsys.readouterr().out


def test_analyze_confusion_runs_a_checkpoint(tiny_checkpoint, tiny_shapes, tmp_path):
    out = tmp_path / "confusion"
    argv = ["analyze", "confusion", str(tiny_checkpoint), "--dataset", str(tiny_shapes / "annotations" / "val.json"),
            "--out", str(out), "--score-thr", "0.0", "--nms-iou-thr", "0.5", "--no-progress"]
    assert main(argv) == 0
    with open(out / "confusion_matrix.csv") as fh:
        assert len(list(csv.reader(fh))) == 1 + 7  # header, 6 classes, background


def test_bad_threshold_is_refused(bright_model_dir, bright_dataset, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "confusion", str(bright_model_dir), "--dataset", str(bright_dataset), "--out", str(tmp_path),
              "--iou-thr", "2"])
    assert "must be in [0, 1]" in capsys.readouterr().err
