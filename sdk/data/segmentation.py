"""COCO ``segmentation`` fields (polygons, uncompressed and compressed RLE) as masks.

Decoding goes through ``pycocotools.mask`` (the ``train`` extra), as COCO's own tools
rasterize polygons; ``mask_polygons`` is the inverse the synthetic dataset uses when
asked for polygons.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from sdk.errors import DatasetError, require


def check_segmentation(seg: Any, where: str) -> None:
    """``DatasetError`` unless ``seg`` is a COCO polygon list (lists of >= 6 numbers)
    or an RLE dict (``size`` [H, W] and ``counts``, a string or a list of ints)."""
    if isinstance(seg, list):
        ok = bool(seg) and all(
            isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in p)
            for p in seg
        )
        if not ok:
            raise DatasetError(f"{where}: segmentation polygons must be lists of >= 3 x, y pairs, got {str(seg)[:120]}")
        return
    if isinstance(seg, dict) and isinstance(seg.get("size"), list) and len(seg["size"]) == 2 \
            and isinstance(seg.get("counts"), (str, list)):
        return
    raise DatasetError(f"{where}: segmentation must be a list of polygons or an RLE dict with 'size' and 'counts', "
                       f"got {str(seg)[:120]}")


def decode_segmentation(seg: Any, height: int, width: int) -> np.ndarray:
    """uint8 (height, width) mask, 1 inside, of a COCO ``segmentation`` (the polygons of
    one object are merged, as pycocotools' ``annToMask`` does)."""
    mask_utils = require("pycocotools.mask", extra="train", purpose="Reading COCO segmentation masks")
    if isinstance(seg, list):
        rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):
        rle = mask_utils.frPyObjects(seg, height, width)
    else:
        rle = {"size": seg["size"], "counts": seg["counts"].encode("ascii") if isinstance(seg["counts"], str) else seg["counts"]}
    mask = mask_utils.decode(rle)
    if mask.shape != (height, width):
        raise DatasetError(f"a segmentation of size {mask.shape} in an image of {height}x{width} (HxW)")
    return mask.astype(np.uint8)


def mask_polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygons (x, y lists, pixel-centre contours) of the outer boundaries of a
    binary mask. Holes are not representable (COCO merges polygons), so a ring's
    polygon covers its hole; use RLE for exact masks."""
    contours, _ = cv2.findContours(np.asarray(mask, np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for contour in contours:
        if len(contour) >= 3:
            polygons.append([float(v) for v in contour.reshape(-1)])
    return polygons
