"""Instance masks through the data pipeline: COCO polygons and RLE, transforms, synthetic masks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from sdk.data.coco import CocoDetection
from sdk.data.segmentation import decode_segmentation, mask_polygons
from sdk.data.shapes import RenderParams, render_image
from sdk.data.synthetic import generate_synthetic_coco
from sdk.data.transforms import build_eval_transforms, build_train_transforms, collate_detection
from sdk.errors import DatasetError
from sdk.masks import encode_rle
from sdk.preprocess import Preprocess, preprocess_image

LETTERBOX = Preprocess(mode="letterbox", size=(128, 160))
KEEP_RATIO = Preprocess(mode="keep_ratio", size=(96, 160), pad_divisor=32, pad_position="center", pad_value=50)


def _write(tmp_path, annotations, height=40, width=50):
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((height, width, 3), np.uint8))
    ann = tmp_path / "ann.json"
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "a.png", "width": width, "height": height}],
                               "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))
    return ann, tmp_path / "images"


def test_polygons_compressed_and_uncompressed_rle_decode_to_the_same_pixels(tmp_path):
    expected = np.zeros((40, 50), np.uint8)
    expected[10:20, 5:25] = 1
    rle = encode_rle(expected)
    uncompressed = {"size": [40, 50], "counts": []}  # column-major run lengths, starting with zeros
    flat, value, run = expected.flatten(order="F"), 0, 0
    for v in flat:
        if v != value:
            uncompressed["counts"].append(run)
            value, run = v, 0
        run += 1
    uncompressed["counts"].append(run)
    # a polygon along the pixel edges of the block covers exactly its pixels
    polygon = [[5, 10, 25, 10, 25, 20, 5, 20]]
    anns = [{"id": i + 1, "image_id": 1, "category_id": 1, "bbox": [5, 10, 20, 10], "segmentation": seg}
            for i, seg in enumerate([rle, uncompressed, polygon])]
    target = CocoDetection(*_write(tmp_path, anns), masks=True).target(0)
    assert target["masks"].shape == (3, 40, 50) and target["masks"].dtype == np.uint8
    for mask in target["masks"]:
        np.testing.assert_array_equal(mask, expected)
    assert "masks" not in CocoDetection(tmp_path / "ann.json", tmp_path / "images").target(0)  # masks=False


@pytest.mark.parametrize("seg, message", [(None, "no 'segmentation'"), ([[1, 2, 3]], "polygons"), ({"counts": "x"}, "RLE")])
def test_bad_segmentation_is_a_dataset_error(tmp_path, seg, message):
    ann = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [5, 10, 20, 10]}
    if seg is not None:
        ann["segmentation"] = seg
    with pytest.raises(DatasetError, match=message):
        CocoDetection(*_write(tmp_path, [ann]), masks=True)


def _image_with_mask(h=150, w=210):
    image = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((1, h, w), np.uint8)
    mask[0, 60:90, 84:100] = 1  # an L: flips and resizes must keep its shape, not just its box
    mask[0, 80:90, 84:126] = 1
    image[mask[0] > 0] = 255
    target = {"boxes": np.array([[84, 60, 126, 90]], np.float32), "labels": np.array([1]), "image_id": 1,
              "orig_size": (h, w), "masks": mask}
    return image, target


@pytest.mark.parametrize("pre", [LETTERBOX, KEEP_RATIO], ids=["letterbox", "keep_ratio"])
@pytest.mark.parametrize("hflip", [0.0, 1.0])
def test_masks_move_with_the_pixels(pre, hflip):
    """After flip and placement the mask covers the same pixels as the (white) object."""
    image, target = _image_with_mask()
    transform = build_train_transforms(pre, hflip=hflip, scale_jitter=None, photometric=False)
    out, out_target, record = transform(image, target)
    masks = out_target["masks"]
    assert masks.dtype == torch.uint8 and masks.shape == (1, *out.shape[1:])
    expected = (preprocess_image(np.ascontiguousarray(image[:, ::-1] if hflip else image), pre)[0][..., 0] > 127)
    agreement = (masks[0].numpy().astype(bool) == expected).mean()
    assert agreement > 0.995 and masks.sum() > 100


def test_scale_jitter_and_sanitize_keep_masks_with_their_boxes():
    torch.manual_seed(0)
    image, target = _image_with_mask()
    transform = build_train_transforms(LETTERBOX, hflip=0.5, scale_jitter=(0.5, 2.0), photometric=False)
    for _ in range(10):
        out, out_target, _ = transform(image, target)
        assert len(out_target["masks"]) == len(out_target["boxes"])
        for mask, box in zip(out_target["masks"], out_target["boxes"]):
            ys, xs = np.nonzero(mask.numpy())
            x1, y1, x2, y2 = box.tolist()
            assert xs.min() >= x1 - 1 and xs.max() <= x2 and ys.min() >= y1 - 1 and ys.max() <= y2


def test_eval_placement_and_collate_pad_masks_like_images():
    image, target = _image_with_mask()
    small_image, small_target = _image_with_mask(h=90, w=120)
    transform = build_eval_transforms(KEEP_RATIO)
    images, targets, _ = collate_detection([transform(image, target), transform(small_image, small_target)])
    for im, t in zip(images, targets):
        assert t["masks"].shape[-2:] == im.shape[-2:]
        assert (t["masks"][0].bool() == (im[0] > 127)).float().mean() > 0.995


def test_synthetic_masks_are_the_visible_pixels_of_each_object():
    rng = np.random.default_rng(5)
    rendered = render_image(rng, 160, 200, RenderParams(num_objects=(6, 6), max_overlap=0.6))
    assert rendered.objects
    for k, obj in enumerate(rendered.objects):
        mask = rendered.instances == k
        assert mask.sum() == obj.area  # occlusion by later objects is applied to the mask
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = obj.box
        assert x1 <= xs.min() and xs.max() < x2 and y1 <= ys.min() and ys.max() < y2


@pytest.mark.parametrize("kind", ["rle", "polygon"])
def test_synthetic_dataset_writes_masks_cocodetection_reads(tmp_path, kind):
    paths = generate_synthetic_coco(tmp_path, num_train=4, num_val=0, image_size=128, object_size=(24, 60),
                                    segmentation=kind, progress=False)
    coco = json.loads(paths.train_json.read_text())
    assert coco["annotations"] and all("segmentation" in a for a in coco["annotations"])
    dataset = CocoDetection(paths.train_json, paths.images_dir, masks=True)
    for index in range(len(dataset)):
        target = dataset.target(index)
        anns = [a for a in coco["annotations"] if a["image_id"] == target["image_id"]]
        for mask, ann in zip(target["masks"], anns):
            if kind == "rle":  # exact: the annotated area is the mask's pixel count
                assert int(mask.sum()) == ann["area"]
            else:  # outer contours through pixel centres: within a boundary's width, holes filled
                assert abs(int(mask.sum()) - ann["area"]) < 0.5 * ann["area"] + 20


def test_mask_polygons_round_trip_a_convex_block():
    mask = np.zeros((30, 40), np.uint8)
    mask[5:25, 10:30] = 1
    decoded = decode_segmentation(mask_polygons(mask), 30, 40)
    # pixel-centre contour: pycocotools' rasterization keeps the inner block, loses <= one boundary row/col
    assert np.all(decoded <= mask) and decoded.sum() >= (20 - 1) * (20 - 1)
    rle = mask_utils.encode(np.asfortranarray(mask))
    assert mask_utils.area(rle) == 400
