"""Benchmark inputs: encoded image files, so decoding is timed as in real use.

Default: a few synthetic JPEGs (smooth gradient, coloured shapes, mild noise) made in
memory from a seed, so ``sdk benchmark`` runs anywhere without a dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from sdk.errors import InputError


def synthetic_images(count: int = 8, *, size: tuple[int, int] = (480, 640), seed: int = 0) -> list[bytes]:
    """``count`` JPEG-encoded (H, W) = ``size`` images with a few filled shapes each."""
    rng = np.random.default_rng(seed)
    h, w = size
    out = []
    for _ in range(count):
        ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * rng.uniform(40, 200, 3)
        image = np.ascontiguousarray((ramp + rng.normal(0, 8, (h, w, 3))).clip(0, 255).astype(np.uint8))
        for _ in range(int(rng.integers(2, 7))):
            x1, y1 = int(rng.integers(0, w * 3 // 4)), int(rng.integers(0, h * 3 // 4))
            x2, y2 = x1 + int(rng.integers(2, max(3, w // 3))), y1 + int(rng.integers(2, max(3, h // 3)))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            if rng.random() < 0.5:
                cv2.rectangle(image, (x1, y1), (x2, y2), colour, thickness=-1)
            else:
                centre, axes = ((x1 + x2) // 2, (y1 + y2) // 2), ((x2 - x1) // 2, (y2 - y1) // 2)
                cv2.ellipse(image, centre, axes, 0, 0, 360, colour, thickness=-1)
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok, "OpenCV failed to encode a JPEG"
        out.append(buf.tobytes())
    return out


def folder_images(folder: str | os.PathLike, *, limit: int = 64) -> list[bytes]:
    """The bytes of up to ``limit`` image files found in ``folder`` (sorted)."""
    from sdk.images import expand_image_paths

    paths = expand_image_paths([str(folder)])[:limit]
    if not paths:
        raise InputError(f"no images found in {folder}: pass a folder of .jpg/.png files to --images")
    return [Path(p).read_bytes() for p in paths]
