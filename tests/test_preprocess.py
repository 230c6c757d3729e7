"""``sdk.preprocess``: placement of images in the network input and the way back."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from sdk.errors import ConfigError
from sdk.preprocess import ImageRecord, Preprocess, iter_chunks, preprocess_batch, preprocess_image, resize_scale


def _image(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _content_and_padding(padded: np.ndarray, record: ImageRecord) -> tuple[np.ndarray, np.ndarray]:
    """The resized image inside ``padded`` and a mask of the padding around it."""
    top, left = record.pad
    new_h = round(record.orig_hw[0] * record.scale[0])
    new_w = round(record.orig_hw[1] * record.scale[1])
    mask = np.ones(padded.shape[:2], bool)
    mask[top : top + new_h, left : left + new_w] = False
    return padded[top : top + new_h, left : left + new_w], mask


@pytest.mark.parametrize(
    "h, w, new_hw",
    [
        (400, 100, (320, 80)),  # tall: height fills
        (100, 400, (80, 320)),  # wide: width fills
        (480, 640, (240, 320)),
        (320, 320, (320, 320)),  # already the size: no resize
        (1, 1, (320, 320)),  # tiny: upscaled
        (1, 1000, (1, 320)),  # a one-pixel strip keeps one row
    ],
)
@pytest.mark.parametrize("pad_position", ["top_left", "center"])
def test_letterbox_placement(h, w, new_hw, pad_position):
    pre = Preprocess(mode="letterbox", size=(320, 320), pad_position=pad_position, pad_value=7)
    image = _image(h, w)
    padded, record = preprocess_image(image, pre)
    assert padded.shape == (320, 320, 3) and padded.dtype == np.uint8
    assert record.orig_hw == (h, w) and record.input_hw == (320, 320)
    assert record.scale == (new_hw[0] / h, new_hw[1] / w)
    expected_pad = ((320 - new_hw[0]) // 2, (320 - new_hw[1]) // 2) if pad_position == "center" else (0, 0)
    assert record.pad == expected_pad
    content, pad_mask = _content_and_padding(padded, record)
    reference = image if (h, w) == new_hw else cv2.resize(image, new_hw[::-1], interpolation=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(content, reference)
    assert (padded[pad_mask] == 7).all()


def test_letterbox_non_square_target():
    pre = Preprocess(size=(64, 96))
    _, record = preprocess_image(_image(300, 300), pre)
    assert record.input_hw == (64, 96) and record.scale == (64 / 300, 64 / 300)
    assert resize_scale(pre, 300, 300) == 64 / 300


def test_keep_ratio_without_canvas_pads_to_divisor():
    pre = Preprocess(mode="keep_ratio", size=(100, 150), pad_divisor=32)
    padded, record = preprocess_image(_image(200, 250), pre)  # short side -> 100
    assert record.scale == (100 / 200, 125 / 250) and padded.shape[:2] == (128, 128)
    _, record = preprocess_image(_image(100, 1000), pre)  # long side capped at 150
    assert record.scale == (15 / 100, 150 / 1000) and record.input_hw == (32, 160)
    assert pre.static_shape is None


@pytest.mark.parametrize("h, w", [(200, 250), (100, 1000), (1000, 100), (5, 5)])
def test_keep_ratio_with_canvas(h, w):
    pre = Preprocess(mode="keep_ratio", size=(100, 150), canvas=(128, 128), pad_position="center", pad_value=0)
    image = np.full((h, w, 3), 255, np.uint8)
    padded, record = preprocess_image(image, pre)
    assert padded.shape == (128, 128, 3) and record.input_hw == (128, 128) == pre.static_shape
    scale = resize_scale(pre, h, w)
    assert scale <= min(100 / min(h, w), 150 / max(h, w)) and round(h * scale) <= 128 and round(w * scale) <= 128
    content, pad_mask = _content_and_padding(padded, record)
    assert (content == 255).all() and (padded[pad_mask] == 0).all()


def test_preprocess_image_writes_into_out():
    pre = Preprocess(size=(32, 32))
    out = np.zeros((40, 40, 3), np.uint8)
    padded, _ = preprocess_image(_image(64, 32), pre, out=out)
    assert np.shares_memory(padded, out) and padded.shape == (32, 32, 3)


@pytest.mark.parametrize(
    "pre",
    [
        Preprocess(size=(320, 320)),
        Preprocess(size=(320, 256), pad_position="center"),
        Preprocess(mode="keep_ratio", size=(200, 333), canvas=(352, 352), pad_position="center"),
        Preprocess(mode="keep_ratio", size=(200, 333)),
    ],
    ids=["letterbox", "letterbox_center", "keep_ratio_canvas", "keep_ratio"],
)
@pytest.mark.parametrize("h, w", [(480, 640), (640, 200), (37, 53)])
def test_records_round_trip_boxes(pre, h, w):
    _, record = preprocess_image(_image(h, w), pre)
    rng = np.random.default_rng(1)
    corners = np.sort(rng.uniform(0, 1, (50, 2, 2)), axis=1) * np.array([w, h])  # [[x1, y1], [x2, y2]]
    boxes = corners.reshape(50, 4).astype(np.float32)
    back = record.boxes_to_original(record.boxes_to_input(boxes))
    np.testing.assert_allclose(back, boxes, rtol=1e-5, atol=1e-3)
    # the image's own corners land on the content's corners in the network input
    corners = record.boxes_to_input(np.array([[0, 0, w, h]], np.float32))[0]
    top, left = record.pad
    np.testing.assert_allclose(
        corners, [left, top, left + round(w * record.scale[1]), top + round(h * record.scale[0])], atol=1e-3
    )


def test_boxes_to_original_clips_to_the_image():
    record = ImageRecord(orig_hw=(100, 200), input_hw=(64, 64), scale=(0.32, 0.32), pad=(16, 0))
    out = record.boxes_to_original(np.array([[-10, 0, 100, 70], [0, 17, 1, 18]], np.float32))
    np.testing.assert_allclose(out, [[0, 0, 200, 100], [0, 1 / 0.32, 1 / 0.32, 2 / 0.32]], rtol=1e-5)
    assert record.boxes_to_original(np.zeros((0, 4))).shape == (0, 4)


def test_wiring_batch_mixed_sizes_letterbox_equals_single():
    pre = Preprocess(size=(64, 64))
    images = [_image(100, 50, 1), _image(20, 90, 2), _image(64, 64, 3)]
    batch, records = preprocess_batch(images, pre)
    assert batch.shape == (3, 3, 64, 64) and batch.dtype == np.uint8 and batch.flags["C_CONTIGUOUS"]
    for i, image in enumerate(images):
        single, record = preprocess_image(image, pre)
        np.testing.assert_array_equal(batch[i], single.transpose(2, 0, 1))
        assert records[i] == record


@pytest.mark.parametrize("pre", [Preprocess(size=(48, 48)), Preprocess(mode="keep_ratio", size=(32, 64))])
def test_wiring_batch_with_loader_equals_preloaded(pre):
    images = [_image(100, 50, 1), _image(20, 90, 2)]
    loaded = []

    def load(item):
        loaded.append(item)
        return images[item]

    expected = preprocess_batch(images, pre)
    batch, records = preprocess_batch([0, 1], pre, load=load)
    assert loaded == [0, 1]
    np.testing.assert_array_equal(batch, expected[0])
    assert records == expected[1]


def test_batch_keep_ratio_pads_bottom_right_to_the_largest():
    pre = Preprocess(mode="keep_ratio", size=(32, 64), pad_divisor=16, pad_value=9)
    images = [_image(32, 64, 1), _image(64, 32, 2)]
    batch, records = preprocess_batch(images, pre)
    assert batch.shape == (2, 3, 64, 64)
    assert all(r.input_hw == (64, 64) for r in records)
    single, record = preprocess_image(images[0], pre)
    assert record.input_hw == (32, 64) and records[0].scale == record.scale and records[0].pad == record.pad
    np.testing.assert_array_equal(batch[0, :, :32, :64], single.transpose(2, 0, 1))
    assert (batch[0, :, 32:, :] == 9).all()


def test_batch_float_normalized():
    pre = Preprocess(size=(16, 16), normalize_in_graph=False, mean=(10.0, 20.0, 30.0), std=(2.0, 4.0, 8.0))
    images = [_image(20, 16)]
    batch, _ = preprocess_batch(images, pre)
    uint8, _ = preprocess_batch(images, Preprocess(size=(16, 16)))
    assert batch.dtype == np.float32
    expected = (uint8.astype(np.float32) - np.array([10, 20, 30], np.float32).reshape(1, 3, 1, 1)) / np.array(
        [2, 4, 8], np.float32
    ).reshape(1, 3, 1, 1)
    np.testing.assert_array_equal(batch, expected)
    with pytest.raises(ValueError, match="at least one image"):
        preprocess_batch([], pre)


def test_serialization_round_trip():
    pre = Preprocess(
        mode="keep_ratio", size=(100, 200), canvas=(224, 224), pad_position="center", normalize_in_graph=False
    )
    data = json.loads(pre.to_json())
    assert data["canvas"] == [224, 224] and data["size"] == [100, 200]
    assert Preprocess.from_dict(data) == pre and hash(Preprocess.from_dict(data)) == hash(pre)
    with pytest.raises(ConfigError, match="unknown preprocess keys"):
        Preprocess.from_dict({**data, "swap_rb": True})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"mode": "stretch"}, "mode"),
        ({"size": (0, 10)}, "size"),
        ({"mode": "keep_ratio", "size": (200, 100)}, "short, long"),
        ({"interpolation": "lanczos"}, "interpolation"),
        ({"pad_position": "bottom"}, "pad_position"),
        ({"std": (1.0, 0.0, 1.0)}, "std"),
        ({"pad_value": 300}, "pad_value"),
        ({"pad_divisor": 0}, "pad_divisor"),
    ],
)
def test_invalid_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Preprocess(**kwargs)


def test_with_static_shape():
    assert Preprocess(size=(320, 320)).with_static_shape((256, 320)).size == (256, 320)
    keep = Preprocess(mode="keep_ratio", size=(300, 500), pad_divisor=32)
    assert keep.with_static_shape().canvas == (512, 512)
    assert keep.with_static_shape((320, 640)).static_shape == (320, 640)


def test_iter_chunks():
    assert [list(c) for c in iter_chunks(list(range(7)), 3)] == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(iter_chunks([], 3)) == []


@pytest.mark.parametrize("h, w", [(480, 640), (640, 480), (333, 500), (427, 640), (1000, 10), (800, 1333), (799, 1201)])
def test_keep_ratio_sizes_equal_torchvision(h, w):
    """keep_ratio floors h * scale as torchvision's F.interpolate(scale_factor=...) does
    (640 x 480 -> 1066 x 800, where rounding would give 1067): the content and the
    /32-padded input are torchvision's to the pixel."""
    torch = pytest.importorskip("torch")
    from torchvision.models.detection.transform import GeneralizedRCNNTransform

    from sdk.preprocess import input_hw, resized_hw

    transform = GeneralizedRCNNTransform(min_size=800, max_size=1333, image_mean=[0.0] * 3, image_std=[1.0] * 3)
    batch, _ = transform([torch.zeros(3, h, w)])
    pre = Preprocess(mode="keep_ratio", size=(800, 1333), pad_divisor=32)
    assert resized_hw(pre, h, w) == tuple(batch.image_sizes[0])
    assert input_hw(pre, h, w) == tuple(batch.tensors.shape[-2:])
    padded, record = preprocess_image(_image(h, w), pre)
    assert padded.shape[:2] == tuple(batch.tensors.shape[-2:])
    assert record.scale == (batch.image_sizes[0][0] / h, batch.image_sizes[0][1] / w)


def test_dynamic_input_range():
    from sdk.preprocess import dynamic_input_range

    pre = Preprocess(mode="keep_ratio", size=(800, 1333), pad_divisor=32)
    assert dynamic_input_range(pre) == ((32, 32), (800, 1344), (1344, 1344))
    with pytest.raises(ConfigError, match="without a canvas"):
        dynamic_input_range(pre.with_static_shape())
    with pytest.raises(ConfigError, match="without a canvas"):
        dynamic_input_range(Preprocess(mode="letterbox", size=(320, 320)))
