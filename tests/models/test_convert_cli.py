"""``sdk convert torchvision``: torchvision state_dict -> SDK checkpoint -> same detections."""

from __future__ import annotations

import json

import pytest
import torch
from parity_support import assert_same_detections, randomize_, run_torchvision, torchvision_reference
from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

import sdk.models
from sdk.checkpoint import build_model_from_checkpoint, load_checkpoint
from sdk.cli.main import main

MODEL = "ssdlite320_mobilenet_v3_large"  # the cheapest torchvision-named model


@pytest.fixture(scope="module")
def coco_reference():
    """torchvision's SSDlite with the 91 COCO outputs and informative random weights."""
    torch.manual_seed(0)
    reference = torchvision_reference(MODEL, num_classes=91)
    randomize_(reference, torch.randn(2, 3, 128, 128, generator=torch.Generator().manual_seed(1)), seed=2)
    return reference.eval()


def test_convert_coco_state_dict_round_trip(coco_reference, tmp_path, capsys):
    weights = tmp_path / "ssdlite_coco.pth"
    torch.save(coco_reference.state_dict(), weights)
    out = tmp_path / "ckpt" / "ssdlite.pt"
    argv = ["convert", "torchvision", str(weights), "--model", MODEL, "--classes", "coco", "--out", str(out)]
    assert main([*argv, "--max-det", "50"]) == 0
    assert str(out) in capsys.readouterr().out

    meta = load_checkpoint(out).meta
    spec = sdk.models.get_model_spec(MODEL)
    assert meta.model_name == MODEL and meta.num_classes == 91
    assert list(meta.classes) == FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"]
    assert meta.classes[1] == "person" and meta.classes[0] == "__background__"
    assert meta.preprocess == spec.default_preprocess
    assert meta.postprocess == {**spec.default_postprocess(), "max_det": 50}

    model, _ = build_model_from_checkpoint(out)
    images = torch.randn(2, 3, 160, 224, generator=torch.Generator().manual_seed(3))
    coco_reference.detections_per_img = 50
    with torch.no_grad():
        expected = run_torchvision(coco_reference, images)
        actual = model(images)
    assert_same_detections(actual, expected, min_dets=20)


def test_convert_accepts_reference_script_checkpoints_and_class_files(coco_reference, tmp_path):
    """A torchvision reference-script checkpoint ({"model": ...}) and a COCO annotation
    file as the class list (-> ["__background__", *names by id])."""
    state = coco_reference.state_dict()
    weights = tmp_path / "train_ckpt.pth"
    torch.save({"model": state, "epoch": 25}, weights)
    categories = [{"id": i, "name": f"class{i}"} for i in range(90, 0, -1)]  # unsorted on purpose
    annotations = tmp_path / "instances.json"
    annotations.write_text(json.dumps({"images": [], "annotations": [], "categories": categories}))
    out = tmp_path / "ckpt.pt"
    argv = ["convert", "torchvision", str(weights), "--model", MODEL, "--classes", str(annotations)]
    assert main([*argv, "--out", str(out), "--score-thr", "0.2", "--set", "topk_candidates=100"]) == 0
    meta = load_checkpoint(out).meta
    assert meta.classes[:3] == ("__background__", "class1", "class2") and len(meta.classes) == 91
    assert meta.postprocess["score_thr"] == 0.2 and meta.model_overrides == {"topk_candidates": 100}
    model, _ = build_model_from_checkpoint(out)
    assert (model.score_thresh, model.topk_candidates) == (0.2, 100)


def test_convert_rejects_wrong_class_count(coco_reference, tmp_path, capsys):
    weights = tmp_path / "ssdlite_coco.pth"
    torch.save(coco_reference.state_dict(), weights)
    classes = tmp_path / "classes.txt"
    classes.write_text("__background__\ncat\ndog\n")
    out = tmp_path / "ckpt.pt"
    argv = ["convert", "torchvision", str(weights), "--model", MODEL, "--classes", str(classes), "--out", str(out)]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "size mismatch" in error and "--classes" in error
    assert not out.exists()


def test_convert_rejects_unknown_model_and_override(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    torch.save({"x": torch.zeros(1)}, weights)
    base = ["convert", "torchvision", str(weights), "--classes", "coco", "--out", str(tmp_path / "c.pt")]
    assert main([*base, "--model", "ssdlite_big"]) == 2
    assert "available models" in capsys.readouterr().err
    assert main([*base, "--model", MODEL, "--set", "depth=3"]) == 2
    assert "valid overrides" in capsys.readouterr().err


def test_convert_legacy_retinanet_keys(tmp_path):
    """torchvision's published RetinaNet COCO weights predate its head's
    Conv2dNormActivation (keys ``conv.0.weight``, ``conv.2.weight``, ...); torchvision's
    load hook renames them, so they convert too."""
    torch.manual_seed(0)
    reference = torchvision_reference("retinanet_resnet50_fpn", num_classes=91)
    legacy = {}
    for key, value in reference.state_dict().items():
        for branch in ("classification_head", "regression_head"):
            for i in range(4):
                for kind in ("weight", "bias"):
                    key = key.replace(f"head.{branch}.conv.{i}.0.{kind}", f"head.{branch}.conv.{2 * i}.{kind}")
        legacy[key] = value
    assert "head.classification_head.conv.6.weight" in legacy
    weights = tmp_path / "retinanet_legacy.pth"
    torch.save(legacy, weights)
    out = tmp_path / "retinanet.pt"
    argv = ["convert", "torchvision", str(weights), "--model", "retinanet_resnet50_fpn", "--classes", "coco"]
    assert main([*argv, "--out", str(out)]) == 0
    model, meta = build_model_from_checkpoint(out)
    assert meta.model_overrides == {"frozen_batchnorm": True, "batchnorm_eps": 0.0, "trainable_backbone_layers": 3}
    expected = reference.state_dict()["head.classification_head.conv.3.0.weight"]
    assert torch.equal(model.state_dict()["head.classification_head.conv.3.0.weight"], expected)
