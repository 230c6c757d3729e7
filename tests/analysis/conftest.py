"""Fixtures of the analysis tests: hand-made COCO files, a deterministic ONNX model_dir
(``support.bright_box``: it finds the one bright rectangle of an image exactly) and a
random-weight ``fcos_tiny`` checkpoint on a tiny synthetic dataset."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.bright_box import bright_box_model_dir

from sdk.preprocess import Preprocess


def write_coco(path: Path, images: list[dict], annotations: list[dict], categories: list[dict]) -> Path:
    """A COCO file; annotations get ids, ``area`` and ``iscrowd`` unless given."""
    anns = []
    for i, ann in enumerate(annotations, 1):
        x, y, w, h = ann["bbox"]
        anns.append({"id": i, "area": w * h, "iscrowd": 0, **ann})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": categories}))
    return path


def result(image_id: int, category_id: int, bbox, score: float) -> dict:
    return {"image_id": image_id, "category_id": category_id, "bbox": [float(v) for v in bbox], "score": score}


# (rgb colour, box x1, y1, x2, y2 drawn, ground-truth box x, y, w, h) per 64 x 96 image;
# the bright-box model finds the drawn box; the ground truth of image 2 is shifted
# (IoU 0.625 with what is drawn), image 3's is labelled green although it is drawn red.
BRIGHT_SCENES = [
    ((255, 0, 0), (10, 10, 50, 40), [10, 10, 40, 30], 1),  # red, exact
    ((0, 255, 0), (40, 20, 80, 50), [40, 20, 40, 30], 2),  # green, exact
    ((0, 0, 255), (20, 10, 60, 50), [20, 10, 40, 25], 3),  # blue, IoU 25/40 = 0.625
    ((255, 0, 0), (30, 30, 70, 60), [30, 30, 40, 30], 2),  # drawn red, labelled green
]
BRIGHT_CATEGORIES = [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}, {"id": 3, "name": "blue"}]


@pytest.fixture(scope="session")
def bright_dataset(tmp_path_factory) -> Path:
    """``root/annotations/val.json`` + ``root/images/*.png`` of ``BRIGHT_SCENES``."""
    root = tmp_path_factory.mktemp("bright")
    (root / "images").mkdir()
    images, anns = [], []
    for i, (rgb, (x1, y1, x2, y2), gt_box, cat) in enumerate(BRIGHT_SCENES, 1):
        img = np.zeros((64, 96, 3), np.uint8)
        img[y1:y2, x1:x2] = rgb
        cv2.imwrite(str(root / "images" / f"{i}.png"), img[:, :, ::-1])
        images.append({"id": i, "file_name": f"{i}.png", "width": 96, "height": 64})
        anns.append({"image_id": i, "category_id": cat, "bbox": gt_box})
    return write_coco(root / "annotations" / "val.json", images, anns, BRIGHT_CATEGORIES)


@pytest.fixture(scope="session")
def bright_model_dir(tmp_path_factory) -> Path:
    """The bright-box ONNX model_dir (classes red, green, blue; 64 x 96 letterbox)."""
    pre = Preprocess(mode="letterbox", size=(64, 96))
    return bright_box_model_dir(tmp_path_factory.mktemp("bright_model"), preprocess=pre, max_det=5, max_batch=4)


@pytest.fixture(scope="session")
def tiny_shapes(tmp_path_factory) -> Path:
    """4 val images (96 px) of the synthetic shapes dataset."""
    from sdk.data.synthetic import generate_synthetic_coco

    root = tmp_path_factory.mktemp("tiny_shapes")
    generate_synthetic_coco(root, num_train=0, num_val=4, image_size=96, seed=0, size_jitter=0.1,
                            objects_per_image=(1, 3), object_size=(16.0, 48.0), clutter=0.2, progress=False)
    return root


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """An untrained ``fcos_tiny`` checkpoint on the synthetic classes (score threshold 0,
    so it returns detections), with a fake optimizer state in ``extra``."""
    import torch

    from sdk.checkpoint import CheckpointMeta, save_checkpoint
    from sdk.data.synthetic import SYNTH_CLASSES
    from sdk.models import build_model

    torch.manual_seed(0)
    classes = ("__background__", *SYNTH_CLASSES)
    meta = CheckpointMeta(model_name="fcos_tiny", num_classes=len(classes), classes=classes,
                          preprocess=Preprocess(mode="letterbox", size=(96, 96)),
                          postprocess={"score_thr": 0.0, "iou_thr": 0.5, "max_det": 20})
    model = build_model("fcos_tiny", num_classes=len(classes))
    extra = {"epoch": 1, "optimizer": {"state": {0: {"momentum_buffer": torch.ones(3)}}, "param_groups": []}}
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "fcos.pt", meta=meta, state_dict=model.state_dict(),
                           extra=extra)
