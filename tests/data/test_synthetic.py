"""The synthetic shapes dataset: layout, validity, determinism, tight boxes, knobs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sdk.data.shapes import RenderParams, render_image
from sdk.data.synthetic import SYNTH_CLASSES, generate_synthetic_coco, synthetic_images
from sdk.errors import ConfigError
from sdk.images import load_image

TINY = dict(num_train=6, num_val=3, image_size=160, object_size=(16, 64), progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_and_coco_validity(tmp_path):
    paths = generate_synthetic_coco(tmp_path / "ds", seed=3, **TINY)
    assert paths.train_json == tmp_path / "ds" / "annotations" / "train.json"
    assert paths.images_dir == tmp_path / "ds" / "images"
    for json_path, split, count in ((paths.train_json, "train", 6), (paths.val_json, "val", 3)):
        coco = json.loads(json_path.read_text())
        assert [c["id"] for c in coco["categories"]] == list(range(1, len(SYNTH_CLASSES) + 1))
        assert [c["name"] for c in coco["categories"]] == list(SYNTH_CLASSES)
        assert len(coco["images"]) == count
        sizes = {im["id"]: (im["height"], im["width"]) for im in coco["images"]}
        for im in coco["images"]:
            assert im["file_name"].startswith(f"{split}/")
            assert load_image(paths.images_dir / im["file_name"]).shape[:2] == sizes[im["id"]]
            assert all(120 <= side <= 200 for side in sizes[im["id"]])  # 160 +- 25 %
        ann_ids = [a["id"] for a in coco["annotations"]]
        assert len(set(ann_ids)) == len(ann_ids)
        for ann in coco["annotations"]:
            x, y, w, h = ann["bbox"]
            height, width = sizes[ann["image_id"]]
            assert w > 0 and h > 0 and x >= 0 and y >= 0 and x + w <= width and y + h <= height
            assert 0 < ann["area"] <= w * h and ann["iscrowd"] == 0
            assert 1 <= ann["category_id"] <= len(SYNTH_CLASSES)
    pycocotools = pytest.importorskip("pycocotools.coco")
    assert len(pycocotools.COCO(str(paths.train_json)).getImgIds()) == 6


def test_same_seed_gives_identical_bytes_and_another_seed_does_not(tmp_path):
    a = generate_synthetic_coco(tmp_path / "a", seed=7, **TINY)
    b = generate_synthetic_coco(tmp_path / "b", seed=7, **TINY)
    c = generate_synthetic_coco(tmp_path / "c", seed=8, **TINY)
    files_a, files_b, files_c = _files(a.root), _files(b.root), _files(c.root)
    assert files_a == files_b
    assert files_a.keys() == files_c.keys()
    assert files_a["annotations/train.json"] != files_c["annotations/train.json"]
    assert files_a["images/train/000001.jpg"] != files_c["images/train/000001.jpg"]


def test_an_image_does_not_depend_on_the_split_size(tmp_path):
    small = generate_synthetic_coco(tmp_path / "s", seed=1, **{**TINY, "num_train": 2, "num_val": 1})
    large = generate_synthetic_coco(tmp_path / "l", seed=1, **TINY)
    for name in ("train/000001.jpg", "train/000002.jpg", "val/000001.jpg"):
        assert (small.images_dir / name).read_bytes() == (large.images_dir / name).read_bytes()
    # and train and val never share an image
    assert (large.images_dir / "train/000001.jpg").read_bytes() != (large.images_dir / "val/000001.jpg").read_bytes()


def test_image_sizes_vary_and_are_not_square(tmp_path):
    paths = generate_synthetic_coco(tmp_path / "ds", seed=0, **{**TINY, "num_train": 12})
    images = json.loads(paths.train_json.read_text())["images"]
    shapes = {(im["height"], im["width"]) for im in images}
    assert len(shapes) > 6
    assert any(h != w for h, w in shapes)


@pytest.mark.parametrize("seed", range(6))
def test_boxes_are_tight_to_the_rendered_objects(seed):
    params = RenderParams(num_objects=(3, 6), object_size=(20.0, 90.0))
    rendered = render_image(np.random.default_rng(seed), 230, 270, params)
    assert rendered.image.shape == (230, 270, 3) and rendered.image.dtype == np.uint8
    assert rendered.instances.shape == (230, 270)
    assert len(rendered.objects) > 0
    for k, obj in enumerate(rendered.objects):
        ys, xs = np.nonzero(rendered.instances == k)
        assert len(xs) == obj.area
        visible = (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1)
        x1, y1, x2, y2 = obj.box
        # the box holds every visible pixel; it is larger only where a later object hides part
        assert x1 <= visible[0] and y1 <= visible[1] and x2 >= visible[2] and y2 >= visible[3]
        if _unoccluded(rendered, k):
            assert (x1, y1, x2, y2) == visible
        assert params.object_size[0] * 0.75 <= max(x2 - x1, y2 - y1) <= params.object_size[1] + 1


def _unoccluded(rendered, k) -> bool:
    """No other annotated object shows inside object k's box (a crude occlusion test)."""
    x1, y1, x2, y2 = (int(v) for v in rendered.objects[k].box)
    window = rendered.instances[y1:y2, x1:x2]
    return not np.any((window != k) & (window != -1))


def test_every_kept_object_is_fully_visible_when_no_occlusion_is_allowed():
    strict = RenderParams(num_objects=(6, 6), max_overlap=1.0, max_occlusion=0.0, max_truncation=0.0)
    loose = RenderParams(num_objects=(6, 6), max_overlap=1.0, max_occlusion=1.0, max_truncation=0.0)
    dropped = 0
    for seed in range(5):
        a = render_image(np.random.default_rng(seed), 200, 200, strict)
        b = render_image(np.random.default_rng(seed), 200, 200, loose)
        np.testing.assert_array_equal(a.image, b.image)  # dropping an annotation changes no pixel
        dropped += len(b.objects) - len(a.objects)
        for k, obj in enumerate(a.objects):
            x1, y1, x2, y2 = (int(v) for v in obj.box)
            ys, xs = np.nonzero(a.instances == k)
            assert (xs.min(), ys.min(), xs.max() + 1, ys.max() + 1) == (x1, y1, x2, y2)
    assert dropped > 0  # with overlap allowed, some objects were hidden and left out


def test_empty_images_and_class_subsets(tmp_path):
    paths = generate_synthetic_coco(tmp_path / "e", seed=0, empty_fraction=1.0, **TINY)
    coco = json.loads(paths.train_json.read_text())
    assert len(coco["images"]) == 6 and coco["annotations"] == []
    paths = generate_synthetic_coco(tmp_path / "s", seed=0, classes=("star", "circle"), **TINY)
    coco = json.loads(paths.train_json.read_text())
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "star"), (2, "circle")]
    assert {a["category_id"] for a in coco["annotations"]} <= {1, 2}


@pytest.mark.parametrize(
    "bad",
    [
        {"clutter": 1.5},
        {"objects_per_image": (3, 1)},
        {"object_size": (0, 10)},
        {"object_size": (150, 200)},  # does not fit a 120 px side
        {"classes": ("circle", "hexagon")},
        {"num_train": -1},
    ],
)
def test_bad_knobs_raise_config_error(tmp_path, bad):
    with pytest.raises(ConfigError):
        generate_synthetic_coco(tmp_path / "x", **{**TINY, **bad})


def test_synthetic_images_are_seeded_shapes_images_of_the_asked_size():
    images = synthetic_images(3, seed=5)
    assert all(im.dtype == np.uint8 and im.ndim == 3 and im.shape[2] == 3 for im in images)
    assert all(200 <= side <= 520 for im in images for side in im.shape[:2])
    assert len({im.shape for im in images}) > 1  # sizes differ, so resizing is exercised
    again = synthetic_images(4, seed=5)
    assert all(np.array_equal(a, b) for a, b in zip(images, again))  # image i depends on (seed, i) only
    other = synthetic_images(1, seed=6)[0]
    assert other.shape != images[0].shape or not np.array_equal(other, images[0])
    fixed = synthetic_images(2, size=(48, 64), seed=0)
    assert [im.shape for im in fixed] == [(48, 64, 3)] * 2 and fixed[0].std() > 10  # not a blank canvas
