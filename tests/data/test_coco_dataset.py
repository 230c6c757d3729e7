"""CocoDetection: label mapping by name, crowd/degenerate boxes, empty images, errors."""

from __future__ import annotations

import json
import logging

import cv2
import numpy as np
import pytest

from sdk.data.coco import CocoDetection
from sdk.data.synthetic import SYNTH_CLASSES, generate_synthetic_coco
from sdk.errors import DatasetError

# category ids are non-contiguous and listed out of id order on purpose
CATEGORIES = [{"id": 12, "name": "bird"}, {"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}]
IMAGES = [
    {"id": 10, "file_name": "a.png", "width": 64, "height": 48},
    {"id": 20, "file_name": "sub/b.png", "width": 40, "height": 30},
    {"id": 30, "file_name": "c.png", "width": 32, "height": 32},  # no annotations
]
ANNOTATIONS = [
    {"id": 1, "image_id": 10, "category_id": 3, "bbox": [5, 6, 10, 8], "iscrowd": 0},
    {"id": 2, "image_id": 10, "category_id": 12, "bbox": [50, 40, 30, 20]},  # leaves the image: clipped
    {"id": 3, "image_id": 10, "category_id": 7, "bbox": [1, 1, 20, 20], "iscrowd": 1},  # crowd: not a target
    {"id": 4, "image_id": 20, "category_id": 7, "bbox": [3, 3, 0, 5]},  # zero width: dropped
    {"id": 5, "image_id": 20, "category_id": 7, "bbox": [-4, 2, 10, 10]},  # starts left of the image: clipped
    {"id": 6, "image_id": 20, "category_id": 3, "bbox": [45, 2, 5, 5]},  # entirely outside: dropped
]


def _write_dataset(root, *, images=IMAGES, annotations=ANNOTATIONS, categories=CATEGORIES):
    for entry in images:
        path = root / "images" / entry["file_name"]
        path.parent.mkdir(parents=True, exist_ok=True)
        bgr = np.zeros((entry["height"], entry["width"], 3), np.uint8)
        bgr[..., 2] = 200  # red in BGR
        cv2.imwrite(str(path), bgr)
    ann = root / "ann.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return ann, root / "images"


@pytest.fixture
def dataset_files(tmp_path):
    return _write_dataset(tmp_path)


def test_default_classes_follow_category_ids_and_labels_map_by_name(dataset_files):
    ds = CocoDetection(*dataset_files)
    assert ds.classes == ["__background__", "cat", "dog", "bird"]
    assert ds.category_ids_by_name == {"cat": 3, "dog": 7, "bird": 12}
    assert ds.label_to_category_id == {1: 3, 2: 7, 3: 12}
    assert ds.image_ids == [10, 20, 30] and len(ds) == 3
    image, target = ds[0]
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    assert tuple(image[0, 0]) == (200, 0, 0)  # RGB
    assert target["image_id"] == 10 and target["orig_size"] == (48, 64)
    assert target["boxes"].dtype == np.float32 and target["labels"].dtype == np.int64
    np.testing.assert_array_equal(target["boxes"], [[5, 6, 15, 14], [50, 40, 64, 48]])
    np.testing.assert_array_equal(target["labels"], [1, 3])  # cat, bird; the crowd dog is left out


def test_given_classes_are_matched_by_name(dataset_files):
    classes = ["__background__", "fish", "dog", "bird", "cat"]
    ds = CocoDetection(*dataset_files, classes=classes)
    assert ds.classes == classes
    np.testing.assert_array_equal(ds[0][1]["labels"], [4, 3])
    assert ds.label_to_category_id == {4: 3, 2: 7, 3: 12}
    with pytest.raises(DatasetError, match="bird"):
        CocoDetection(*dataset_files, classes=["__background__", "cat", "dog"])


def test_degenerate_boxes_clipped_or_dropped_with_one_log_line(dataset_files, caplog):
    with caplog.at_level(logging.INFO, logger="sdk.data.coco"):
        ds = CocoDetection(*dataset_files)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "clipped 2" in warnings[0] and "dropped 2" in warnings[0]
    assert any("1 iscrowd" in r.getMessage() for r in caplog.records)
    _, target = ds[1]
    np.testing.assert_array_equal(target["boxes"], [[0, 2, 6, 12]])
    np.testing.assert_array_equal(target["labels"], [2])


def test_images_without_objects_kept_unless_filtered(dataset_files):
    ds = CocoDetection(*dataset_files)
    image, target = ds[2]
    assert image.shape == (32, 32, 3)
    assert target["boxes"].shape == (0, 4) and target["labels"].shape == (0,)
    assert CocoDetection(*dataset_files, filter_empty=True).image_ids == [10, 20]


def test_crowd_only_image_counts_as_empty(tmp_path):
    anns = [{"id": 1, "image_id": 10, "category_id": 3, "bbox": [1, 1, 5, 5], "iscrowd": 1}]
    ann, images = _write_dataset(tmp_path, annotations=anns)
    assert CocoDetection(ann, images, filter_empty=True).image_ids == []


def test_transforms_receive_image_and_target(dataset_files):
    seen = []
    ds = CocoDetection(*dataset_files, transforms=lambda image, target: seen.append(target["image_id"]) or "out")
    assert ds[1] == "out" and seen == [20]


def test_missing_and_corrupt_images_name_the_file(dataset_files):
    ann, images = dataset_files
    (images / "a.png").unlink()
    (images / "sub" / "b.png").write_bytes(b"not an image")
    ds = CocoDetection(ann, images)
    with pytest.raises(DatasetError, match="a.png"):
        ds[0]
    with pytest.raises(DatasetError, match="sub/b.png"):
        ds[1]


def test_image_size_disagreeing_with_the_annotations_is_an_error(dataset_files):
    ann, images = dataset_files
    cv2.imwrite(str(images / "c.png"), np.zeros((10, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="c.png.*32x32"):
        CocoDetection(ann, images)[2]


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[]", "top level"),
        (json.dumps({"annotations": [], "categories": []}), "'images'"),
        (json.dumps({"images": IMAGES, "annotations": {}, "categories": CATEGORIES}), "'annotations' must be a list"),
        (json.dumps({"images": [{"id": 1, "file_name": "a.png"}], "categories": []}), "lacks 'width'"),
        (json.dumps({"images": IMAGES + IMAGES[:1], "categories": CATEGORIES}), "duplicate image id 10"),
        (json.dumps({"images": IMAGES, "categories": CATEGORIES + [{"id": 99, "name": "cat"}]}), "duplicate category name"),
        (json.dumps({"images": IMAGES, "categories": CATEGORIES,
                     "annotations": [{"image_id": 10, "category_id": 3, "bbox": [1, 2, 3]}]}), r"annotations\[0\].*bbox"),
        (json.dumps({"images": IMAGES, "categories": CATEGORIES,
                     "annotations": [{"image_id": 10, "category_id": 3, "bbox": [1, 2, "x", 4]}]}), "bbox"),
        (json.dumps({"images": IMAGES, "categories": CATEGORIES,
                     "annotations": [{"image_id": 11, "category_id": 3, "bbox": [1, 2, 3, 4]}]}), "image_id 11"),
        (json.dumps({"images": IMAGES, "categories": CATEGORIES,
                     "annotations": [{"image_id": 10, "category_id": 4, "bbox": [1, 2, 3, 4]}]}), "category_id 4"),
    ],
)
def test_malformed_annotation_files_say_what_is_wrong(tmp_path, content, message):
    ann = tmp_path / "bad.json"
    ann.write_text(content)
    with pytest.raises(DatasetError, match=message):
        CocoDetection(ann, tmp_path)


def test_missing_annotation_file(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        CocoDetection(tmp_path / "nope.json", tmp_path)


def test_reads_the_synthetic_dataset(tmp_path):
    paths = generate_synthetic_coco(tmp_path, num_train=4, num_val=1, image_size=160, object_size=(16, 64), progress=False)
    ds = CocoDetection(paths.train_json, paths.images_dir)
    assert ds.classes == ["__background__", *SYNTH_CLASSES]
    coco = json.loads(paths.train_json.read_text())
    for index in range(len(ds)):
        image, target = ds[index]
        anns = [a for a in coco["annotations"] if a["image_id"] == target["image_id"]]
        expected = np.array([[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)], np.float32).reshape(-1, 4)
        np.testing.assert_array_equal(target["boxes"], expected)
        np.testing.assert_array_equal(target["labels"], [a["category_id"] for a in anns])  # ids 1..C == labels
        assert image.shape[:2] == target["orig_size"]
