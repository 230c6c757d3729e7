"""A COCO annotation file for a folder of unlabeled images (``sdk data images2coco``).

The file lists every image (size read from the file, EXIF orientation applied, as
``sdk.images.load_image`` decodes it) and the categories, with no annotations: enough
for the dataset, inference and evaluation code paths that take a COCO file.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

from sdk.errors import DatasetError
from sdk.images import IMAGE_SUFFIXES

logger = logging.getLogger(__name__)

_EXIF_ORIENTATION = 0x0112
_TRANSPOSING_ORIENTATIONS = {5, 6, 7, 8}  # rotated by 90 or 270 degrees: width and height swap


def parse_class_names(spec: str | Path) -> list[str]:
    """Class names from a ``.txt`` file (one per line; blank lines and ``#`` comments
    skipped) or a comma-separated string. ``DatasetError`` if empty or duplicated."""
    path = Path(spec)
    if path.suffix.lower() == ".txt" or path.is_file():
        if not path.is_file():
            raise DatasetError(f"class list file not found: {path}")
        lines = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        names = [line for line in lines if line and not line.startswith("#")]
    else:
        names = [part.strip() for part in str(spec).split(",") if part.strip()]
    if not names:
        raise DatasetError(f"no class names in {str(spec)!r}: pass a .txt file (one per line) or 'a,b,c'")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise DatasetError(f"class names must be unique; repeated: {duplicates}")
    return names


def image_size(path: Path) -> tuple[int, int]:
    """(width, height) of an image file as decoded (EXIF orientation applied), read from
    its header without decoding the pixels."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise DatasetError(f"{path}: not a readable image ({exc}); remove it or convert it") from exc
    return (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)


def images_to_coco(image_dir: str | Path, classes: Sequence[str], out_json: str | Path) -> Path:
    """Write a COCO JSON listing the images under ``image_dir`` (recursively, sorted;
    ``file_name`` relative to ``image_dir``), categories ``classes`` with ids 1..C and
    no annotations. Returns the written path."""
    from tqdm import tqdm

    root = Path(image_dir)
    if not root.is_dir():
        raise DatasetError(f"image folder not found: {root}")
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DatasetError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    images = []
    for image_id, path in enumerate(tqdm(files, desc="reading image sizes", unit="img", disable=len(files) < 200), start=1):
        width, height = image_size(path)
        images.append({"id": image_id, "file_name": path.relative_to(root).as_posix(), "width": width, "height": height})
    coco = {
        "info": {"description": f"images of {root} (unlabeled)"},
        "licenses": [],
        "images": images,
        "annotations": [],
        "categories": [{"id": i + 1, "name": name, "supercategory": ""} for i, name in enumerate(classes)],
    }
    out = Path(out_json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(coco, indent=1))
    logger.info("wrote %s: %d images, %d categories", out, len(images), len(classes))
    return out
