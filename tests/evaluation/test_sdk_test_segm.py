"""``sdk test`` on a Mask R-CNN checkpoint: segm numbers next to bbox, RLE in ``--out``."""

from __future__ import annotations

import json

import torch

import sdk.models
from sdk.checkpoint import CheckpointMeta, save_checkpoint
from sdk.cli.main import main
from sdk.data.synthetic import SYNTH_CLASSES, generate_synthetic_coco
from sdk.preprocess import Preprocess


def test_sdk_test_reports_segm_and_writes_rle(tmp_path, capsys):
    paths = generate_synthetic_coco(tmp_path / "data", num_train=0, num_val=3, image_size=96, object_size=(20, 40),
                                    progress=False)
    classes = ("__background__", *SYNTH_CLASSES)
    torch.manual_seed(0)
    model = sdk.models.build_model("maskrcnn_tiny", num_classes=len(classes), box_score_thresh=0.0)
    meta = CheckpointMeta(model_name="maskrcnn_tiny", num_classes=len(classes), classes=classes,
                          preprocess=Preprocess(mode="letterbox", size=(96, 96)),
                          postprocess={"score_thr": 0.0, "iou_thr": 0.5, "max_det": 20})
    checkpoint = save_checkpoint(tmp_path / "model.pt", meta=meta, state_dict=model.state_dict())
    out, metrics = tmp_path / "results.json", tmp_path / "metrics.json"
    assert main(["test", str(checkpoint), "--dataset", str(paths.val_json), "--out", str(out), "--classwise",
                 "--metrics-out", str(metrics), "--workers", "0", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "(bbox_mAP)" in printed and "mask (segm):" in printed and "(segm_mAP)" in printed
    assert "mask (segm) class" in printed  # the classwise mask table
    results = json.loads(out.read_text())
    assert results and all(set(r["segmentation"]) == {"size", "counts"} for r in results)
    values = json.loads(metrics.read_text())
    assert 0 <= values["segm_mAP"] <= 1 and set(values["segm_classwise"]) == set(SYNTH_CLASSES)
