"""``sdk.masks.paste_masks`` (numpy/OpenCV) against torchvision's ``paste_masks_in_image``,
and ``decode_outputs`` pasting into original pixels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torchvision.models.detection.roi_heads import paste_masks_in_image

from sdk.masks import decode_rle, encode_rle, paste_masks
from sdk.postprocess import decode_outputs
from sdk.preprocess import Preprocess, preprocess_image


def _case(seed: int, num: int, height: int, width: int, size: int = 28):
    rng = np.random.default_rng(seed)
    masks = rng.random((num, size, size)).astype(np.float32)
    xy = rng.uniform(-20, [width - 2, height - 2], (num, 2))  # some start outside the image
    wh = rng.uniform(0.3, 90, (num, 2))  # sub-pixel to larger than the grid
    wh = np.maximum(wh, 1.5 - xy)  # every box overlaps the image (torchvision's paste needs it, detections do)
    boxes = np.concatenate([xy, xy + wh], axis=1).astype(np.float32)
    return masks, boxes


@pytest.mark.parametrize("seed, num, height, width, size", [(0, 40, 120, 160, 28), (1, 25, 77, 53, 14)])
def test_probabilities_equal_torchvision_paste(seed, num, height, width, size):
    masks, boxes = _case(seed, num, height, width, size)
    expected = paste_masks_in_image(torch.from_numpy(masks)[:, None], torch.from_numpy(boxes), (height, width))[:, 0]
    actual = paste_masks(masks, boxes, (height, width), threshold=None)
    assert actual.shape == (num, height, width) and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected.numpy(), atol=1e-5)
    binary = paste_masks(masks, boxes, (height, width))
    assert binary.dtype == np.bool_ and (binary == (actual >= 0.5)).all()


def test_no_masks_and_boxes_outside_the_image():
    assert paste_masks(np.zeros((0, 28, 28)), np.zeros((0, 4)), (10, 12)).shape == (0, 10, 12)
    outside = paste_masks(np.ones((1, 28, 28)), np.array([[50, 50, 60, 60]]), (10, 12))
    assert not outside.any()


def test_rle_round_trip():
    mask = np.zeros((7, 9), bool)
    mask[2:5, 1:8] = True
    rle = encode_rle(mask)
    assert rle["size"] == [7, 9] and isinstance(rle["counts"], str)
    np.testing.assert_array_equal(decode_rle(rle), mask)


def test_decode_outputs_pastes_into_original_pixels_with_the_unclipped_box():
    """A letterboxed image: the mask of a box reaching into the padding is pasted with
    that whole box (its grid spans it), so the object keeps its shape."""
    pre = Preprocess(mode="letterbox", size=(64, 64), pad_position="center")
    _, record = preprocess_image(np.zeros((32, 64, 3), np.uint8), pre)  # scale 1, 16 rows of padding above
    box = np.array([[8, 8, 40, 40]], np.float32)  # input pixels; rows 8..16 are padding
    probs = np.zeros((1, 28, 28), np.float32)
    probs[0, 7:, :] = 1.0  # the lower 3/4 of the box: input rows 16..40 = original rows 0..24
    outputs = {"num_dets": np.array([[1]], np.int32), "boxes": box[None], "scores": np.array([[0.9]], np.float32),
               "labels": np.array([[1]], np.int32), "masks": probs[None]}
    (det,) = decode_outputs(outputs, [record], ["bg", "thing"])
    assert det.masks.shape == (1, 32, 64) and det.masks.dtype == np.bool_
    expected = paste_masks(probs, np.array([[8, -8, 40, 24]], np.float32), (32, 64))
    np.testing.assert_array_equal(det.masks, expected)
    rows = np.flatnonzero(det.masks[0].any(axis=1))
    assert rows[0] == 0 and abs(rows[-1] - 23) <= 1
    np.testing.assert_allclose(det.boxes, [[8, 0, 40, 24]])  # boxes are clipped, as always


def test_eager_evaluation_returns_pasted_masks_in_original_pixels():
    import sdk.models
    from sdk.engine.evaluate import EagerPredictor

    torch.manual_seed(0)
    model = sdk.models.build_model("maskrcnn_tiny", num_classes=3, box_score_thresh=0.0)
    pre = Preprocess(mode="letterbox", size=(96, 128))
    predictor = EagerPredictor(model, preprocess=pre, classes=["bg", "a", "b"], max_det=20)
    image = np.random.default_rng(0).integers(0, 255, (90, 150, 3), np.uint8)
    (det,) = predictor([image], channel_order="rgb")
    assert 0 < len(det) <= 20 and det.masks is not None
    assert det.masks.shape == (len(det), 90, 150) and det.masks.dtype == np.bool_
    assert len(det.to_coco(1)[0]["segmentation"]["counts"]) > 0


def test_plot_tints_the_mask_pixels_only():
    from sdk.detections import Detections

    image = np.full((120, 160, 3), 100, np.uint8)
    mask = np.zeros((1, 120, 160), bool)
    mask[60:100, 20:60] = True  # well below the label drawn at the box's top
    det = Detections(np.array([[5, 5, 150, 110]], np.float32), [0.9], [1], ["bg", "thing"], masks=mask)
    drawn = det.plot(image, channel_order="rgb", line_width=1)
    plain = Detections(det.boxes, det.scores, det.labels, det.class_names).plot(image, channel_order="rgb", line_width=1)
    changed = (drawn != plain).any(axis=2)
    assert changed[mask[0]].all()
    assert not changed[~mask[0]].any()
