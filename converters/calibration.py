"""Calibration images for int8 export, preprocessed exactly as ``Detector`` does.

    paths = calibration_paths(images_dir="data/val", count=300)        # or dataset="val.json"
    reader = CalibrationReader(paths, preprocess, input_name="images", batch_size=4)

Torch- and onnx-free. ``CalibrationReader`` is what ``onnxruntime.quantization`` reads
calibration data from (``get_next`` / ``rewind``, its ``CalibrationDataReader`` protocol):
it yields ``{input_name: batch}`` with ``batch`` uint8 [B, 3, H, W] (or normalized
float32 when the preprocess does not normalize in the graph), built by
``sdk.preprocess.preprocess_batch``, the one implementation every runtime uses, so the
activation ranges are those the deployed model will see.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from sdk.errors import ConfigError
from sdk.images import IMAGE_SUFFIXES, list_image_folder, load_image
from sdk.preprocess import Preprocess, content_sizes, preprocess_batch
from sdk.runtime.base import SIZES_INPUT

log = logging.getLogger(__name__)

DEFAULT_CALIB_COUNT = 300

HOW_TO_CALIBRATE = (
    "int8 needs real images to calibrate on: pass --calib-images DIR (a folder of representative images) or "
    "--calib-dataset ANN_JSON (a COCO annotation file; its images are read from <ann_dir>/../images), "
    f"and optionally --calib-count N (default {DEFAULT_CALIB_COUNT})"
)


def calibration_paths(
    *, images_dir: str | os.PathLike | None = None, dataset: str | os.PathLike | None = None,
    count: int = DEFAULT_CALIB_COUNT, seed: int = 0,
) -> list[Path]:
    """Up to ``count`` image files from ``images_dir`` or from the images a COCO
    annotation file ``dataset`` lists; a seeded random sample when there are more
    (so the subset spans the set, not its first folder). ``ConfigError`` when neither
    source is given, both are, or no image is found."""
    if (images_dir is None) == (dataset is None):
        raise ConfigError(HOW_TO_CALIBRATE if images_dir is None else
                          "give --calib-images or --calib-dataset, not both")
    if count < 1:
        raise ConfigError(f"--calib-count must be >= 1, got {count}")
    paths = _folder_images(Path(images_dir)) if images_dir is not None else _dataset_images(Path(dataset))
    if len(paths) > count:
        paths = sorted(random.Random(seed).sample(paths, count))
    return paths


def _folder_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise ConfigError(f"--calib-images {folder} is not a folder; {HOW_TO_CALIBRATE}")
    paths = list_image_folder(folder, recursive=True)
    if not paths:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {folder}; {HOW_TO_CALIBRATE}")
    return paths


def _dataset_images(ann_file: Path) -> list[Path]:
    if not ann_file.is_file():
        raise ConfigError(f"--calib-dataset {ann_file} not found; {HOW_TO_CALIBRATE}")
    try:
        images = json.loads(ann_file.read_text())["images"]
        names = [str(image["file_name"]) for image in images]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConfigError(f"--calib-dataset {ann_file} is not a COCO annotation file ({exc})") from exc
    root = ann_file.resolve().parent.parent / "images"
    paths = [root / name for name in names if (root / name).is_file()]
    if not paths:
        raise ConfigError(f"none of the {len(names)} images of {ann_file} exist under {root}; {HOW_TO_CALIBRATE}")
    return paths


class CalibrationReader:
    """Yields ``{input_name: batch}`` (and ``image_sizes`` for a dynamic-shape record) for
    each chunk of ``paths`` (see the module doc);
    ``rewind()`` starts over. ``len()`` counts batches and ``set_range(start, end)``
    restricts the reader to batches ``start <= i < end``: ONNX Runtime's strided
    calibration (``CalibStridedMinMax``) reads a few batches at a time that way, which
    bounds the activations it holds."""

    def __init__(self, paths: Sequence[Path], preprocess: Preprocess, *, input_name: str = "images",
                 batch_size: int = 1) -> None:
        self.paths, self.preprocess = list(paths), preprocess
        self.input_name, self.batch_size = input_name, max(1, batch_size)
        self._range = (0, len(self))
        self._batches: Iterator[dict[str, np.ndarray]] = iter(())
        self.rewind()

    def __len__(self) -> int:
        return -(-len(self.paths) // self.batch_size)

    def _generate(self) -> Iterator[dict[str, np.ndarray]]:
        start, end = self._range
        for index in range(start, min(end, len(self))):
            chunk = self.paths[index * self.batch_size : (index + 1) * self.batch_size]
            batch, records = preprocess_batch([str(p) for p in chunk], self.preprocess,
                                              load=lambda p: load_image(p, channel_order="rgb"))
            if self.preprocess.static_shape is None:  # a dynamic-shape graph: each image's content too
                yield {self.input_name: batch, SIZES_INPUT: content_sizes(records)}
            else:
                yield {self.input_name: batch}

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)

    def rewind(self) -> None:
        self._batches = self._generate()

    def set_range(self, start_index: int, end_index: int) -> None:
        self._range = (start_index, end_index)
        self.rewind()
