"""Detection transforms: the placement equals sdk.preprocess; augmentation keeps boxes on their objects."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from sdk.data.coco import CocoDetection
from sdk.data.synthetic import generate_synthetic_coco
from sdk.data.transforms import build_eval_transforms, build_train_transforms, collate_detection
from sdk.preprocess import Preprocess, preprocess_image

LETTERBOX = Preprocess(mode="letterbox", size=(128, 160))
KEEP_RATIO = Preprocess(mode="keep_ratio", size=(96, 160), pad_divisor=32, pad_position="center", pad_value=50)


def _image_with_rectangle(h=150, w=210, box=(84, 60, 126, 90)):
    """A black image with one white rectangle at ``box`` (xyxy, pixel edges) and its target."""
    image = np.zeros((h, w, 3), np.uint8)
    x1, y1, x2, y2 = box
    image[y1:y2, x1:x2] = 255
    target = {"boxes": np.array([box], np.float32), "labels": np.array([3]), "image_id": 7, "orig_size": (h, w)}
    return image, target


def _bright_box(chw: torch.Tensor) -> np.ndarray:
    ys, xs = np.nonzero(chw[0].numpy() > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


@pytest.mark.parametrize("pre", [LETTERBOX, KEEP_RATIO], ids=["letterbox", "keep_ratio"])
def test_eval_transform_is_exactly_the_deploy_placement(pre):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (150, 210, 3), dtype=np.uint8)
    target = {"boxes": np.array([[10, 20, 60, 90], [100, 5, 209, 149]], np.float32), "labels": np.array([1, 2]),
              "image_id": 3, "orig_size": (150, 210)}
    out, out_target, record = build_eval_transforms(pre)(image, target)
    expected, expected_record = preprocess_image(image, pre)
    assert out.dtype == torch.uint8 and out.shape == (3, *expected.shape[:2])
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), expected)
    assert record == expected_record
    np.testing.assert_allclose(out_target["boxes"].numpy(), expected_record.boxes_to_input(target["boxes"]))
    np.testing.assert_allclose(record.boxes_to_original(out_target["boxes"].numpy()), target["boxes"], atol=1e-4)
    assert out_target["boxes"].dtype == torch.float32 and out_target["labels"].dtype == torch.int64
    assert out_target["image_id"] == 3 and out_target["orig_size"] == (150, 210)


def test_horizontal_flip_moves_boxes_with_the_pixels():
    image, target = _image_with_rectangle()
    transform = build_train_transforms(LETTERBOX, hflip=1.0, scale_jitter=None, photometric=False)
    out, out_target, record = transform(image, target)
    flipped, expected_record = preprocess_image(np.ascontiguousarray(image[:, ::-1]), LETTERBOX)
    np.testing.assert_array_equal(out.permute(1, 2, 0).numpy(), flipped)
    expected_box = expected_record.boxes_to_input(np.array([[210 - 126, 60, 210 - 84, 90]], np.float32))
    np.testing.assert_allclose(out_target["boxes"].numpy(), expected_box, atol=1e-4)
    np.testing.assert_allclose(_bright_box(out), expected_box[0], atol=1.0)


@pytest.mark.parametrize("pre", [LETTERBOX, KEEP_RATIO], ids=["letterbox", "keep_ratio"])
def test_scale_jitter_keeps_boxes_on_their_objects(pre):
    image, target = _image_with_rectangle()
    transform = build_train_transforms(pre, hflip=0.5, scale_jitter=(0.5, 1.5), photometric=False)
    torch.manual_seed(0)
    sizes = set()
    for _ in range(12):
        out, out_target, _ = transform(image, target)
        assert out_target["boxes"].shape == (1, 4)
        np.testing.assert_allclose(out_target["boxes"][0].numpy(), _bright_box(out), atol=1.5)
        np.testing.assert_array_equal(out_target["labels"].numpy(), [3])
        sizes.add(round(float(out_target["boxes"][0, 2] - out_target["boxes"][0, 0])))
    assert len(sizes) > 4  # the object's size in the network input really varies


def test_zoom_out_pads_with_the_preprocess_pad_value():
    image = np.full((100, 100, 3), 200, np.uint8)
    target = {"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    pre = Preprocess(mode="letterbox", size=(100, 100), pad_value=17)
    out, _, _ = build_train_transforms(pre, hflip=0.0, scale_jitter=(0.5, 0.5), photometric=False)(image, target)
    values = set(np.unique(out[0].numpy()).tolist())
    assert values == {17, 200}
    assert (out[0] == 200).sum() == 50 * 50


def test_boxes_mostly_cropped_away_are_dropped():
    image, target = _image_with_rectangle(box=(0, 0, 40, 40))
    transform = build_train_transforms(LETTERBOX, hflip=0.0, scale_jitter=(3.0, 3.0), photometric=False)
    torch.manual_seed(0)
    kept = [len(transform(image, target)[1]["boxes"]) for _ in range(20)]
    assert 0 in kept  # a window far from the corner loses the box, with its label
    for _ in range(20):
        out, out_target, _ = transform(image, target)
        assert len(out_target["boxes"]) == len(out_target["labels"])


def test_photometric_distortion_changes_colours_not_geometry():
    image, target = _image_with_rectangle()
    image[:] = (40, 90, 160)
    transform = build_train_transforms(LETTERBOX, hflip=0.0, scale_jitter=None, photometric=True)
    torch.manual_seed(0)
    reference, ref_target, _ = build_eval_transforms(LETTERBOX)(image, target)
    changed = 0
    for _ in range(8):
        out, out_target, _ = transform(image, target)
        assert out.shape == reference.shape and out.dtype == torch.uint8
        torch.testing.assert_close(out_target["boxes"], ref_target["boxes"])
        changed += not torch.equal(out, reference)
    assert changed > 0


def test_collate_stacks_equal_sizes_and_pads_varying_ones():
    image, target = _image_with_rectangle()
    tall, tall_target = _image_with_rectangle(h=210, w=150, box=(10, 10, 20, 20))
    samples = [build_eval_transforms(LETTERBOX)(im, t) for im, t in ((image, target), (tall, tall_target))]
    images, targets, records = collate_detection(samples)
    assert images.shape == (2, 3, 128, 160) and images.dtype == torch.uint8
    assert [t["image_id"] for t in targets] == [7, 7] and records == [s[2] for s in samples]

    samples = [build_eval_transforms(KEEP_RATIO)(im, t) for im, t in ((image, target), (tall, tall_target))]
    assert samples[0][0].shape != samples[1][0].shape
    images, targets, records = functools.partial(collate_detection, pad_value=KEEP_RATIO.pad_value)(samples)
    height, width = images.shape[2:]
    assert all(r.input_hw == (height, width) for r in records)
    for (single, _, _), padded in zip(samples, images):
        h, w = single.shape[1:]
        torch.testing.assert_close(padded[:, :h, :w], single)
        assert torch.all(padded[:, h:, :] == 50) and torch.all(padded[:, :, w:] == 50)
    assert targets[0]["boxes"].dtype == torch.float32 and targets[0]["labels"].dtype == torch.int64


def test_dataloader_over_the_synthetic_dataset(tmp_path):
    paths = generate_synthetic_coco(tmp_path, num_train=4, num_val=0, image_size=160, object_size=(16, 64), progress=False)
    ds = CocoDetection(paths.train_json, paths.images_dir, transforms=build_train_transforms(LETTERBOX))
    loader = torch.utils.data.DataLoader(ds, batch_size=2, collate_fn=collate_detection)
    images, targets, records = next(iter(loader))
    assert images.shape == (2, 3, 128, 160) and len(targets) == len(records) == 2
    for t in targets:
        boxes = t["boxes"]
        assert boxes.shape[1] == 4 and len(boxes) == len(t["labels"])
        assert torch.all(boxes[:, 2:] > boxes[:, :2])
        assert torch.all(boxes >= 0) and torch.all(boxes[:, 2] <= 160) and torch.all(boxes[:, 3] <= 128)
