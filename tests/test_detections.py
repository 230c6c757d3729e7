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
    masks = np.arange(3 * 2 * 2).reshape(3, 2, 2) % 3 == 0  # bool (N, H, W), each distinct
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


def test_to_dict_rounds_without_float32_noise():
    dets = Detections(np.array([[295.41, 1 / 3, 2.0, 7.123456]], np.float32), np.array([0.1234567], np.float32),
                      np.array([0]))
    text = dets.to_json()
    assert "295.41," in text and "0.333," in text and "7.123]" in text and "0.12346]" in text


def test_filter_takes_a_threshold_a_mask_or_indices():
    dets = Detections(np.arange(12, dtype=np.float32).reshape(3, 4), np.array([0.9, 0.5, 0.2], np.float32),
                      np.array([0, 1, 2]))
    assert dets.filter(0.5).labels.tolist() == [0, 1]
    assert dets.filter(np.array([False, True, True])).labels.tolist() == [1, 2]
    assert dets.filter(dets.labels == 2).scores.tolist() == pytest.approx([0.2])
    assert dets.filter([2, 0]).labels.tolist() == [2, 0]
    with pytest.raises(ValueError, match="boolean mask"):
        dets.filter(np.array([True, False]))


def test_plot_draws_the_best_label_on_top_and_skips_low_scores():
    from sdk.visualize import color_for

    image = np.zeros((100, 100, 3), np.uint8)
    box = [20.0, 40.0, 80.0, 90.0]
    # one object, two class hypotheses; detections arrive sorted by score (descending)
    dets = Detections(np.array([box, box], np.float32), np.array([0.64, 0.52], np.float32), np.array([3, 1]))
    label_band = dets.plot(image)[:37]  # the filled label boxes sit above the box's top edge (y 40)

    def pixels_of(label: int) -> int:
        return int((label_band == np.array(color_for(label), np.uint8)).all(axis=-1).sum())

    assert pixels_of(3) > 50 and pixels_of(1) == 0  # "3 0.64" covers "1 0.52"

    faint = Detections(np.array([box], np.float32), np.array([0.1], np.float32), np.array([3]))
    assert not faint.plot(image).any()  # below the default 0.3
    assert faint.plot(image, score_thr=0.05).any()


def test_to_dict_carries_masks_as_rle():
    pytest.importorskip("pycocotools")
    from sdk.masks import decode_rle

    masks = np.zeros((3, 6, 8), bool)
    masks[0, 1:4, 2:5] = True
    masks[2, :, 7] = True
    data = json.loads(_dets(masks=masks).to_json())
    assert len(data["masks"]) == 3 and data["masks"][0]["size"] == [6, 8]
    for encoded, mask in zip(data["masks"], masks):
        np.testing.assert_array_equal(decode_rle(encoded), mask)
    assert "masks" not in _dets().to_dict()
