"""``sdk test`` and the backend-independent evaluation loop (``sdk.engine.evaluate``)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdk import Detector
from sdk.cli.main import main
from sdk.data.coco import CocoDetection
from sdk.engine.evaluate import METRIC_LABELS, EagerPredictor, run_inference


def test_sdk_test_prints_metrics_and_writes_results(trained_run, tiny_data, tmp_path, capsys):
    results_path, show_dir = tmp_path / "results.json", tmp_path / "show"
    ann = tiny_data / "annotations" / "val.json"
    rc = main(["test", str(trained_run / "best.pt"), "--dataset", str(ann), "--out", str(results_path),
               "--metrics-out", str(tmp_path / "metrics.json"), "--classwise", "--show-dir", str(show_dir),
               "--no-progress", "--workers", "0"])
    out = capsys.readouterr().out
    assert rc == 0
    for label in METRIC_LABELS.values():  # all twelve COCO numbers
        assert label in out
    assert "circle" in out  # the per-class table
    results = json.loads(results_path.read_text())
    assert isinstance(results, list) and results
    assert set(results[0]) == {"image_id", "category_id", "bbox", "score"}
    images = json.loads(ann.read_text())["images"]
    assert {r["image_id"] for r in results} <= {im["id"] for im in images}
    assert len(list(show_dir.rglob("*.jpg"))) == len(images)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # `sdk test` on best.pt scores exactly what validation during training logged for it
    log = [json.loads(line) for line in (trained_run / "log.jsonl").read_text().splitlines()]
    assert metrics["bbox_mAP"] == pytest.approx(max(r["bbox_mAP"] for r in log if r["type"] == "val"), abs=1e-4)


def test_wiring_eager_predictor_matches_detector_on_the_checkpoint(trained_run, tiny_data):
    from sdk.checkpoint import build_model_from_checkpoint

    model, meta = build_model_from_checkpoint(trained_run / "best.pt")
    model.train()  # the predictor must evaluate in eval mode and restore the mode
    predictor = EagerPredictor(model, preprocess=meta.preprocess, classes=meta.classes,
                               max_det=meta.postprocess["max_det"])
    dataset = CocoDetection(tiny_data / "annotations" / "val.json", tiny_data / "images")
    ours = run_inference(predictor, dataset, batch_size=2, progress=False)
    assert model.training
    reference = run_inference(Detector(trained_run / "best.pt"), dataset, batch_size=2, progress=False)
    assert sorted(ours) == sorted(reference) == sorted(dataset.image_ids)
    for image_id, det in ours.items():
        np.testing.assert_allclose(det.boxes, reference[image_id].boxes, atol=1e-3)
        np.testing.assert_allclose(det.scores, reference[image_id].scores, atol=1e-5)
        assert det.class_names == reference[image_id].class_names


def test_sdk_test_rejects_bad_inputs(trained_run, tiny_data, tmp_path, capsys):
    ann = tiny_data / "annotations" / "val.json"
    assert main(["test", str(trained_run / "best.pt"), "--dataset", str(tmp_path / "missing.json")]) == 2
    assert "annotation file not found" in capsys.readouterr().err
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    assert main(["test", str(garbage), "--dataset", str(ann)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "garbage.pt" in err and "\n" not in err


@pytest.mark.parametrize("images", ["missing_dir", "wrong_dir"])
def test_sdk_test_with_a_wrong_images_folder_is_one_line(trained_run, tiny_data, tmp_path, capsys, images):
    ann = tiny_data / "annotations" / "val.json"
    (tmp_path / "wrong_dir").mkdir()
    rc = main(["test", str(trained_run / "best.pt"), "--dataset", str(ann), "--images", str(tmp_path / images),
               "--no-progress", "--workers", "1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err and images in err
    assert "Traceback" not in err


def test_worker_errors_print_their_last_line():
    from sdk.errors import InputError, one_line

    wrapped = InputError("Caught InputError in DataLoader worker process 0.\nOriginal Traceback (most recent call "
                         "last):\n  File \"x.py\", line 1, in f\nsdk.errors.InputError: image file not found: a.jpg")
    assert one_line(wrapped) == "image file not found: a.jpg"
