"""``sdk.postprocess.decode_outputs``: contract outputs -> ``Detections`` in original pixels."""

from __future__ import annotations

import numpy as np
import pytest

from sdk.postprocess import decode_outputs, pack_detections
from sdk.preprocess import Preprocess, preprocess_batch

CLASSES = ("a", "b", "c")


def _outputs(num_dets, boxes, scores, labels, k=4):
    """Contract 2 for per-image lists (already in descending score order)."""
    assert [len(sc) for sc in scores] == list(num_dets)
    return pack_detections(list(zip(boxes, scores, labels)), max_det=k)


def test_rows_past_num_dets_are_ignored_and_boxes_map_back():
    pre = Preprocess(size=(64, 64), pad_position="center")
    images = [np.zeros((128, 64, 3), np.uint8), np.zeros((32, 128, 3), np.uint8)]
    _, records = preprocess_batch(images, pre)
    net_boxes = [np.array([[16, 0, 48, 32], [20, 10, 30, 20]], np.float32), np.array([[0, 24, 64, 40]], np.float32)]
    out = _outputs([2, 1], net_boxes, [[0.9, 0.3], [0.8]], [[0, 2], [1]])
    out["scores"][0, 2:] = 0.99  # padding rows: must not leak into the result
    dets = decode_outputs(out, records, CLASSES)
    assert [len(d) for d in dets] == [2, 1]
    # image 0: scale 0.5, centred horizontally (pad left 16); image 1: scale 0.5, pad top 24
    np.testing.assert_allclose(dets[0].boxes, [[0, 0, 64, 64], [8, 20, 28, 40]])
    np.testing.assert_allclose(dets[1].boxes, [[0, 0, 128, 32]])
    for d, r, b in zip(dets, records, net_boxes):
        np.testing.assert_allclose(d.boxes, r.boxes_to_original(b))
    assert dets[0].names == ["a", "c"] and dets[1].names == ["b"] and dets[0].labels.dtype == np.int64
    np.testing.assert_allclose(dets[0].scores, [0.9, 0.3])


def test_score_threshold_and_clipping():
    _, records = preprocess_batch([np.zeros((50, 50, 3), np.uint8)], Preprocess(size=(50, 50)))
    out = _outputs(
        [3], [np.array([[-5, -5, 60, 20], [1, 1, 2, 2], [3, 3, 4, 4]], np.float32)], [[0.7, 0.5, 0.1]], [[0, 1, 2]]
    )
    (all_dets,) = decode_outputs(out, records, CLASSES)
    np.testing.assert_allclose(all_dets.boxes[0], [0, 0, 50, 20])  # clipped to the image
    (kept,) = decode_outputs(out, records, CLASSES, score_thr=0.5)
    assert kept.scores.tolist() == pytest.approx([0.7, 0.5]) and kept.labels.tolist() == [0, 1]


def test_padded_batch_and_empty_images():
    _, records = preprocess_batch([np.zeros((10, 10, 3), np.uint8)], Preprocess(size=(10, 10)))
    out = _outputs(
        [0, 2, 2],
        [np.zeros((0, 4)), np.ones((2, 4)), np.ones((2, 4))],
        [[], [0.5, 0.4], [0.5, 0.4]],
        [[], [0, 0], [0, 0]],
    )
    dets = decode_outputs(out, records, CLASSES)  # 3 rows, 1 real image (a fixed-batch engine)
    assert len(dets) == 1 and len(dets[0]) == 0 and dets[0].class_names == CLASSES


def test_missing_outputs():
    with pytest.raises(ValueError, match=r"lack \['labels'\]"):
        decode_outputs({"num_dets": 0, "boxes": 0, "scores": 0}, [], CLASSES)


def test_postprocess_record_is_defined_and_validated_once():
    from sdk.errors import ConfigError
    from sdk.postprocess_record import Postprocess

    record = Postprocess.from_dict({"score_thr": 0, "iou_thr": 0.5, "max_det": 100})
    assert record.to_dict() == {"score_thr": 0.0, "iou_thr": 0.5, "max_det": 100}
    assert isinstance(record.score_thr, float)
    for bad, message in [({"score_thr": 0.1, "iou_thr": 0.5}, "needs exactly the keys"),
                         ({"score_thr": 0.1, "iou_thr": 0.5, "max_det": 0}, "max_det must be an int >= 1"),
                         ({"score_thr": 0.1, "iou_thr": 1.5, "max_det": 5}, "0 <= iou_thr <= 1"),
                         ({"score_thr": "0.1", "iou_thr": 0.5, "max_det": 5}, "score_thr must be a number")]:
        with pytest.raises(ConfigError, match=message):
            Postprocess.from_dict(bad)


def test_pack_detections_orders_truncates_pads_and_decodes_back():
    boxes = np.array([[0, 0, 4, 4], [1, 1, 5, 5], [2, 2, 6, 6], [3, 3, 7, 7]], np.float32)
    scores = np.array([0.2, 0.9, 0.5, 0.9], np.float32)  # a tie: the earlier row stays first
    labels = np.array([0, 1, 2, 0])
    out = pack_detections([(boxes, scores, labels), (np.zeros((0, 4)), np.zeros(0), np.zeros(0))], max_det=3)
    assert {k: (v.dtype, v.shape) for k, v in out.items()} == {
        "num_dets": (np.int32, (2, 1)), "boxes": (np.float32, (2, 3, 4)),
        "scores": (np.float32, (2, 3)), "labels": (np.int32, (2, 3)),
    }
    assert out["num_dets"].ravel().tolist() == [3, 0]
    assert out["scores"][0].tolist() == pytest.approx([0.9, 0.9, 0.5]) and out["labels"][0].tolist() == [1, 0, 2]
    np.testing.assert_array_equal(out["boxes"][0], boxes[[1, 3, 2]])
    assert not out["boxes"][1].any() and not out["scores"][1].any() and not out["labels"][1].any()
    _, records = preprocess_batch([np.zeros((8, 8, 3), np.uint8)] * 2, Preprocess(size=(8, 8)))
    first, empty = decode_outputs(out, records, CLASSES)
    np.testing.assert_array_equal(first.boxes, boxes[[1, 3, 2]])
    assert len(empty) == 0
