"""The COCO error breakdown on constructed detections (APs worked out by hand), and
``sdk analyze errors`` / ``sdk analyze eval`` on a results file."""

from __future__ import annotations

import json

import pytest
from conftest import result, write_coco

from sdk.analysis.coco_errors import ERROR_TYPES, analyze_errors
from sdk.cli.main import main

# a and b are both "x" (similar classes), c is "y"
CATS = [{"id": 1, "name": "a", "supercategory": "x"}, {"id": 2, "name": "b", "supercategory": "x"},
        {"id": 3, "name": "c", "supercategory": "y"}]
IMAGES = [{"id": 1, "file_name": "1.png", "width": 200, "height": 200}]
GTS = [
    {"image_id": 1, "category_id": 1, "bbox": [10, 10, 40, 40]},    # A1
    {"image_id": 1, "category_id": 1, "bbox": [100, 10, 40, 40]},   # A2
    {"image_id": 1, "category_id": 2, "bbox": [10, 100, 40, 40]},   # B
    {"image_id": 1, "category_id": 3, "bbox": [100, 100, 40, 40]},  # C
]
# detections of class a, best score first; every one is an error of exactly one kind
RESULTS = [
    result(1, 1, [160, 160, 30, 30], 0.95),  # background
    result(1, 1, [100, 100, 40, 40], 0.90),  # on C: other-class confusion
    result(1, 1, [10, 100, 40, 40], 0.85),   # on B: similar-class confusion
    result(1, 1, [100, 10, 40, 12], 0.80),   # on A2 with IoU 0.3: localization error
    result(1, 1, [10, 10, 40, 24], 0.75),    # on A1 with IoU 0.6: right at .5, wrong at .75
]


def _interp_ap(points):
    """COCO's 101-point interpolated AP of (recall, precision) points in detection order."""
    import numpy as np

    recall, precision = np.array([p[0] for p in points]), np.array([p[1] for p in points])
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    thresholds = np.linspace(0, 1, 101)
    idx = np.searchsorted(recall, thresholds, side="left")
    return float(np.mean([envelope[i] if i < len(recall) else 0.0 for i in idx]))


def test_breakdown_of_constructed_errors(tmp_path):
    ann = write_coco(tmp_path / "ann.json", IMAGES, GTS, CATS)
    breakdown = analyze_errors(str(ann), RESULTS, progress=False)
    a = breakdown.ap(0)
    # by hand: (recall, precision) after each counted detection, 2 ground truths of a
    expected = {
        "C75": 0.0,                                                             # nothing matches at .75
        "C50": _interp_ap([(0, 0), (0, 0), (0, 0), (0, 0), (0.5, 1 / 5)]),      # only the last one
        "Loc": _interp_ap([(0, 0), (0, 0), (0, 0), (0.5, 1 / 4), (1, 2 / 5)]),  # IoU .1: both on A
        "Sim": _interp_ap([(0, 0), (0, 0), (0.5, 1 / 3), (1, 2 / 4)]),          # the one on B ignored
        "Oth": _interp_ap([(0, 0), (0.5, 1 / 2), (1, 2 / 3)]),                  # the one on C ignored too
        "BG": 1.0,                                                              # every false positive gone
        "FN": 1.0,
    }
    assert expected["C50"] == pytest.approx(51 * 0.2 / 101) and expected["Oth"] == pytest.approx(2 / 3)
    assert a == pytest.approx(expected, abs=1e-9)
    # b and c have ground truth but no detections: 0 until FN
    assert breakdown.ap(1) == pytest.approx({t: 1.0 if t == "FN" else 0.0 for t in ERROR_TYPES})
    overall = breakdown.ap(None)
    assert overall == pytest.approx({t: (a[t] + 2 * breakdown.ap(1)[t]) / 3 for t in ERROR_TYPES})
    # no small or large objects here: no AP in those areas
    assert breakdown.ap(None, area=1)["C50"] is None and breakdown.ap(0, area=2)["C50"] is not None


def test_without_supercategories_similar_equals_localization(tmp_path):
    cats = [{"id": c["id"], "name": c["name"]} for c in CATS]
    ann = write_coco(tmp_path / "ann.json", IMAGES, GTS, cats)
    a = analyze_errors(ann, RESULTS, progress=False).ap(0)
    assert a["Sim"] == pytest.approx(a["Loc"]) and a["Oth"] == pytest.approx(2 / 3)


def test_analyze_errors_and_eval_cli(tmp_path, capsys):
    ann = write_coco(tmp_path / "ann.json", IMAGES, GTS, CATS)
    res = tmp_path / "results.json"
    res.write_text(json.dumps(RESULTS))
    out = tmp_path / "errors"
    assert main(["analyze", "errors", str(res), "--dataset", str(ann), "--out", str(out), "--no-progress"]) == 0
    table = json.loads((out / "errors.json").read_text())
    assert table["all"]["a"]["Oth"] == pytest.approx(2 / 3) and table["small"]["a"]["C50"] is None
    names = {p.name for p in out.iterdir()}
    assert {"overall-all.png", "overall-medium.png", "classes.png", "class-a.png", "errors.csv"} <= names
    assert "overall-small.png" not in names
    assert "C75" in capsys.readouterr().out

    metrics_out = tmp_path / "metrics.json"
    assert main(["analyze", "eval", str(res), "--dataset", str(ann), "--classwise", "--metrics-out",
                 str(metrics_out)]) == 0
    metrics = json.loads(metrics_out.read_text())
    assert metrics["bbox_mAP_50"] == pytest.approx(51 * 0.2 / 101 / 3, abs=1e-3)  # only a scores, at .5
    assert metrics["classwise"]["b"] == 0.0
    # the strict and PASCAL curves are COCO's AP75 and AP50
    assert table["all"]["all classes"]["C50"] == pytest.approx(metrics["bbox_mAP_50"], abs=1e-12)
    assert table["all"]["all classes"]["C75"] == pytest.approx(metrics["bbox_mAP_75"], abs=1e-12)
    assert "5 detections on 1 images" in capsys.readouterr().out


@pytest.mark.parametrize("content, message", [
    ("[{\"image_id\": 9, \"category_id\": 1, \"bbox\": [0, 0, 1, 1], \"score\": 1}]", "image_id 9"),
    ("{\"a\": 1}", "JSON list"),
    ("[{\"image_id\": 1}]", "needs image_id, category_id, bbox and score"),
])
def test_bad_results_file_is_one_line(tmp_path, capsys, content, message):
    ann = write_coco(tmp_path / "ann.json", IMAGES, GTS, CATS)
    res = tmp_path / "results.json"
    res.write_text(content)
    for argv in (["analyze", "errors", str(res), "--dataset", str(ann), "--out", str(tmp_path / "o")],
                 ["analyze", "eval", str(res), "--dataset", str(ann)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err and err.count("\n") == 1
