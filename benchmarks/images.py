"""Benchmark inputs: encoded image files, so decoding is timed as in real use.

Default: a few synthetic JPEGs (the synthetic dataset's shapes on cluttered
backgrounds, ``sdk.data.synthetic.synthetic_images``) made in memory from a seed, so
``sdk benchmark`` runs anywhere without a dataset.
"""

from __future__ import annotations

import os
from pathlib import Path

from sdk.data.synthetic import encode_jpeg
from sdk.data.synthetic import synthetic_images as synthetic_rgb
from sdk.errors import InputError


def synthetic_images(count: int = 8, *, size: tuple[int, int] = (480, 640), seed: int = 0) -> list[bytes]:
    """``count`` JPEG-encoded (quality 90) (H, W) = ``size`` synthetic shapes images."""
    return [encode_jpeg(image, 90) for image in synthetic_rgb(count, size=size, seed=seed)]


def folder_images(folder: str | os.PathLike, *, limit: int = 64) -> list[bytes]:
    """The bytes of up to ``limit`` image files found in ``folder`` (sorted)."""
    from sdk.images import expand_image_paths

    paths = expand_image_paths([str(folder)])[:limit]
    if not paths:
        raise InputError(f"no images found in {folder}: pass a folder of .jpg/.png files to --images")
    return [Path(p).read_bytes() for p in paths]
