"""COCO-format detection dataset (``CocoDetection``), torch-free.

The annotation JSON is read and validated once, in the constructor; a malformed file
raises ``DatasetError`` saying which entry is wrong. Images are decoded lazily with
``sdk.images.load_image`` (RGB, EXIF orientation applied).

Labels: the model's class list is ``classes`` (default ``["__background__", *category
names sorted by category id]``), so label ``i`` means ``classes[i]``. Category ids need
not be contiguous (COCO's run 1..90 with gaps): they are mapped to labels by *name*,
and evaluation maps labels back to ids by name too (``category_ids_by_name``).

Targets follow torchvision's detection references:
- ``iscrowd`` annotations are left out of the targets (COCO evaluation, run by
  pycocotools on the annotation file, treats them as "ignore" regions);
- boxes are converted from COCO's (x, y, w, h) to xyxy, clipped to the image, and
  boxes with no area left are dropped; one log line says how many of each;
- images without (usable) objects are kept unless ``filter_empty=True`` (training);
- with ``masks=True`` (Mask R-CNN) each kept annotation's ``segmentation`` (polygons,
  uncompressed or compressed RLE) is decoded by pycocotools into ``target["masks"]``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sdk.data.segmentation import check_segmentation, decode_segmentation
from sdk.errors import DatasetError, InputError
from sdk.images import load_image

logger = logging.getLogger(__name__)

BACKGROUND = "__background__"


@dataclass(frozen=True)
class ImageEntry:
    """One COCO ``images`` entry: ``file_name`` is relative to the images folder."""

    id: int
    file_name: str
    width: int
    height: int


class CocoDetection:
    """A COCO detection dataset.

    ``dataset[i]`` is ``(image, target)`` (or ``transforms(image, target)`` when given):
    ``image`` (H, W, 3) uint8 RGB numpy; ``target`` a dict of ``boxes`` float32 [M, 4]
    xyxy in original-image pixels, ``labels`` int64 [M] indexing ``classes``,
    ``image_id`` int and ``orig_size`` (H, W); with ``masks=True`` also ``masks`` uint8
    [M, H, W] (1 inside the object, original-image pixels).

    Args:
        ann_file: COCO instances JSON.
        images_dir: folder the ``file_name`` entries are relative to.
        classes: the class list labels index (e.g. a checkpoint's); every dataset
            category name must be in it. Default ``["__background__", *names by id]``.
        filter_empty: leave out images with no usable (non-crowd, non-degenerate) box.
        transforms: ``callable(image, target)`` applied to each sample.
        masks: decode every kept annotation's ``segmentation`` into ``target["masks"]``
            (``DatasetError`` naming the first annotation without a valid one).
    """

    def __init__(
        self,
        ann_file: str | Path,
        images_dir: str | Path,
        *,
        classes: Sequence[str] | None = None,
        filter_empty: bool = False,
        transforms: Callable[[np.ndarray, dict[str, Any]], Any] | None = None,
        masks: bool = False,
    ) -> None:
        self.ann_file = Path(ann_file)
        self.images_dir = Path(images_dir)
        self.transforms = transforms
        data = _read_json(self.ann_file)
        images = _parse_images(data, self.ann_file)
        self.categories = _parse_categories(data, self.ann_file)  # {id: name}, sorted by id
        self.category_ids_by_name = {name: cat_id for cat_id, name in self.categories.items()}
        self.classes = list(classes) if classes is not None else [BACKGROUND, *self.categories.values()]
        missing = [name for name in self.categories.values() if name not in self.classes]
        if missing:
            raise DatasetError(
                f"{self.ann_file}: categories {missing} are not in the model's classes "
                f"{self.classes[:10]}{'...' if len(self.classes) > 10 else ''}; train a model on this "
                "dataset's classes or pass classes=None"
            )
        label_of = {cat_id: self.classes.index(name) for cat_id, name in self.categories.items()}
        self.label_to_category_id = {label: cat_id for cat_id, label in label_of.items()}
        self.masks = bool(masks)
        self._boxes, self._labels, self._segs = _parse_annotations(data, self.ann_file, images, label_of, self.masks)
        entries = sorted(images.values(), key=lambda e: e.id)
        if filter_empty:
            entries = [e for e in entries if len(self._boxes.get(e.id, ())) > 0]
        self._entries = entries
        self.image_ids = [e.id for e in entries]
        self._check_images_dir()

    def _check_images_dir(self) -> None:
        """Fail here, in one line, rather than in a DataLoader worker on the first image."""
        if not self.images_dir.is_dir():
            raise DatasetError(f"image folder not found: {self.images_dir} (the folder {self.ann_file.name}'s "
                               "file_names are relative to)")
        # A wrong folder misses every image; one missing file is reported when it is read.
        sample = self._entries[:5]
        if sample and not any((self.images_dir / e.file_name).is_file() for e in sample):
            raise DatasetError(f"{self.images_dir / sample[0].file_name} not found: is {self.images_dir} "
                               f"the folder {self.ann_file.name}'s file_names are relative to?")

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"CocoDetection({self.ann_file.name}: {len(self)} images, {len(self.categories)} categories)"

    def image_entry(self, index: int) -> ImageEntry:
        return self._entries[index]

    def image_path(self, index: int) -> Path:
        return self.images_dir / self._entries[index].file_name

    def load_image(self, index: int) -> np.ndarray:
        """Decode image ``index`` as (H, W, 3) uint8 RGB; ``DatasetError`` if unreadable or if
        its size disagrees with the annotation file."""
        entry, path = self._entries[index], self.image_path(index)
        try:
            image = load_image(path)
        except InputError as exc:
            raise DatasetError(f"image {entry.file_name!r} (id {entry.id} in {self.ann_file}): {exc}") from exc
        if image.shape[:2] != (entry.height, entry.width):
            raise DatasetError(
                f"image {entry.file_name!r} decodes to {image.shape[1]}x{image.shape[0]} (WxH, EXIF orientation "
                f"applied) but {self.ann_file} says {entry.width}x{entry.height}: its boxes would be wrong; "
                "fix the annotation file or the image"
            )
        return image

    def target(self, index: int) -> dict[str, Any]:
        """The annotations of image ``index`` (see the class docstring), without the image."""
        entry = self._entries[index]
        target = {
            "boxes": self._boxes.get(entry.id, np.zeros((0, 4), np.float32)).copy(),
            "labels": self._labels.get(entry.id, np.zeros(0, np.int64)).copy(),
            "image_id": entry.id,
            "orig_size": (entry.height, entry.width),
        }
        if self.masks:
            segs = self._segs.get(entry.id, [])
            target["masks"] = np.zeros((len(segs), entry.height, entry.width), np.uint8)
            for i, seg in enumerate(segs):
                target["masks"][i] = decode_segmentation(seg, entry.height, entry.width)
        return target

    def __getitem__(self, index: int) -> Any:
        image, target = self.load_image(index), self.target(index)
        if self.transforms is not None:
            return self.transforms(image, target)
        return image, target


# -- JSON parsing and validation ---------------------------------------------------
def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise DatasetError(f"annotation file not found: {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); expected a COCO instances file") from exc
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: top level must be a JSON object with 'images', 'annotations', 'categories'")
    for key in ("images", "categories"):
        if not isinstance(data.get(key), list):
            raise DatasetError(f"{path}: missing or non-list {key!r}; expected a COCO instances file")
    if not isinstance(data.get("annotations", []), list):
        raise DatasetError(f"{path}: 'annotations' must be a list")
    return data


def _field(entry: Any, key: str, kind: type, where: str) -> Any:
    if not isinstance(entry, dict) or key not in entry:
        raise DatasetError(f"{where} lacks {key!r}: {str(entry)[:200]}")
    value = entry[key]
    if kind is int and isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise DatasetError(f"{where} has {key}={value!r}; expected {kind.__name__}")
    return value


def _parse_images(data: dict[str, Any], path: Path) -> dict[int, ImageEntry]:
    images: dict[int, ImageEntry] = {}
    for i, entry in enumerate(data["images"]):
        where = f"{path}: images[{i}]"
        image_id = _field(entry, "id", int, where)
        if image_id in images:
            raise DatasetError(f"{where}: duplicate image id {image_id}")
        width, height = _field(entry, "width", int, where), _field(entry, "height", int, where)
        if width <= 0 or height <= 0:
            raise DatasetError(f"{where}: width and height must be positive, got {width}x{height}")
        images[image_id] = ImageEntry(image_id, _field(entry, "file_name", str, where), width, height)
    return images


def _parse_categories(data: dict[str, Any], path: Path) -> dict[int, str]:
    categories: dict[int, str] = {}
    for i, entry in enumerate(data["categories"]):
        where = f"{path}: categories[{i}]"
        cat_id, name = _field(entry, "id", int, where), _field(entry, "name", str, where)
        if cat_id in categories:
            raise DatasetError(f"{where}: duplicate category id {cat_id}")
        if name in categories.values():
            raise DatasetError(f"{where}: duplicate category name {name!r} (labels map to categories by name)")
        categories[cat_id] = name
    return dict(sorted(categories.items()))


def _parse_annotations(
    data: dict[str, Any], path: Path, images: dict[int, ImageEntry], label_of: dict[int, int], masks: bool = False
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray], dict[int, list[Any]]]:
    """Per image id: xyxy float32 boxes clipped to the image, their int64 labels and
    (``masks``) their checked ``segmentation`` fields."""
    boxes: dict[int, list[list[float]]] = {}
    labels: dict[int, list[int]] = {}
    segs: dict[int, list[Any]] = {}
    crowd = clipped = dropped = 0
    for i, ann in enumerate(data.get("annotations", [])):
        where = f"{path}: annotations[{i}]"
        image_id, cat_id = _field(ann, "image_id", int, where), _field(ann, "category_id", int, where)
        if image_id not in images:
            raise DatasetError(f"{where}: image_id {image_id} is not in 'images'")
        if cat_id not in label_of:
            raise DatasetError(f"{where}: category_id {cat_id} is not in 'categories'")
        bbox = _field(ann, "bbox", list, where)
        if len(bbox) != 4 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in bbox):
            raise DatasetError(f"{where}: bbox must be 4 finite numbers [x, y, w, h], got {bbox!r}")
        if ann.get("iscrowd", 0):
            crowd += 1
            continue
        x, y, w, h = (float(v) for v in bbox)
        entry = images[image_id]
        box = [min(max(x, 0.0), entry.width), min(max(y, 0.0), entry.height),
               min(max(x + w, 0.0), entry.width), min(max(y + h, 0.0), entry.height)]
        if box[2] <= box[0] or box[3] <= box[1]:
            dropped += 1
            continue
        clipped += box != [x, y, x + w, y + h]
        if masks:
            if "segmentation" not in ann:
                raise DatasetError(f"{where} has no 'segmentation': a mask model needs one per annotation "
                                   "(polygons or RLE)")
            check_segmentation(ann["segmentation"], where)
            segs.setdefault(image_id, []).append(ann["segmentation"])
        boxes.setdefault(image_id, []).append(box)
        labels.setdefault(image_id, []).append(label_of[cat_id])
    if clipped or dropped:
        logger.warning("%s: clipped %d boxes to their image and dropped %d with no area left", path, clipped, dropped)
    if crowd:
        logger.info("%s: %d iscrowd annotations left out of the targets (COCO eval ignores them)", path, crowd)
    return (
        {k: np.asarray(v, np.float32).reshape(-1, 4) for k, v in boxes.items()},
        {k: np.asarray(v, np.int64) for k, v in labels.items()},
        segs,
    )
