"""``sdk.detections.Detections``: filtering, COCO/JSON export and drawing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdk.detections import Detections

CLASSES = ("__background__", "cat", "dog")


def _dets(**kwargs) -> Detections:
    data = dict(
        boxes=[[10, 20, 50, 60], [0.5, 1.25, 3.0, 4.0], [5, 5, 6, 6]],
        scores=[0.9, 0.5, 0.2],
        labels=[1, 2, 7],
        class_names=CLASSES,
    )
    data.update(kwargs)
    return Detections(**data)


def test_fields_are_normalized():
    d = _dets()
    assert d.boxes.dtype == np.float32 and d.boxes.shape == (3, 4)
    assert d.scores.dtype == np.float32 and d.labels.dtype == np.int64
    assert len(d) == 3 and d.names == ["cat", "dog", "7"]  # unknown label -> its number
    assert repr(d) == "Detections(n=3: cat:0.90, dog:0.50, 7:0.20)"
    with pytest.raises(ValueError, match="differ in length"):
        Detections(boxes=np.zeros((2, 4)), scores=[0.1], labels=[1, 2])
    empty = Detections.empty(CLASSES)
    assert len(empty) == 0 and empty.boxes.shape == (0, 4) and repr(empty) == "Detections(n=0)"


def test_filter_keeps_masks_aligned():
    masks = np.arange(3 * 2 * 2, dtype=np.float32).reshape(3, 2, 2)
    kept = _dets(masks=masks).filter(0.5)
    assert kept.scores.tolist() == pytest.approx([0.9, 0.5])
    np.testing.assert_array_equal(kept.masks, masks[:2])
    assert kept.class_names == CLASSES
    assert len(_dets().filter(0.95)) == 0


def test_to_coco_category_mappings():
    d = _dets()
    default = d.to_coco(image_id=42)
    assert default[0] == {"image_id": 42, "category_id": 1, "bbox": [10.0, 20.0, 40.0, 40.0], "score": 0.9}
    assert [e["category_id"] for e in default] == [1, 2, 7]
    assert default[1]["bbox"] == [0.5, 1.25, 2.5, 2.75]  # x, y, w, h
    by_name = d.to_coco(7, {"cat": 17, "dog": 18})
    assert [e["category_id"] for e in by_name] == [17, 18]  # label 7 has no category: left out
    by_index = d.to_coco(7, [None, 17, 18])
    assert [e["category_id"] for e in by_index] == [17, 18]
    json.dumps(default)  # plain Python types only


def test_to_dict_and_json():
    d = _dets()
    data = json.loads(d.to_json())
    assert data == d.to_dict()
    assert data["names"] == ["cat", "dog", "7"] and data["labels"] == [1, 2, 7]
    assert data["boxes"][1] == [0.5, 1.25, 3.0, 4.0] and data["scores"] == pytest.approx([0.9, 0.5, 0.2])


def test_plot_draws_on_a_bgr_copy():
    image = np.zeros((80, 100, 3), np.uint8)  # BGR, the OpenCV convention
    drawn = _dets().plot(image)
    assert drawn.shape == image.shape and drawn.dtype == np.uint8
    assert not image.any()  # input untouched
    assert drawn[20, 30:50].any() and drawn[40, 10].any()  # box edges
    assert not drawn[40, 30].any()  # box inside stays
    assert drawn.sum() > _dets().plot(image, score_thr=0.95).sum() == 0
    # channel order: an RGB red image comes back as BGR red
    red = np.zeros((80, 100, 3), np.uint8)
    red[..., 0] = 255
    out = Detections.empty().plot(red, channel_order="rgb")
    assert out[0, 0].tolist() == [0, 0, 255]
