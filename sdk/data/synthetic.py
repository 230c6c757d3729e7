"""A synthetic COCO-format detection dataset of coloured shapes on cluttered backgrounds.

It exists so the whole train -> evaluate -> export -> serve loop can run, and be
tested for accuracy, in minutes on a CPU with nothing downloaded::

    from sdk.data.synthetic import generate_synthetic_coco
    paths = generate_synthetic_coco("data/shapes", num_train=800, num_val=200, seed=0)
    # paths.train_json, paths.val_json, paths.images_dir

Layout (COCO ``file_name`` is relative to ``images/``)::

    out_dir/annotations/train.json   out_dir/images/train/000001.jpg ...
    out_dir/annotations/val.json     out_dir/images/val/000001.jpg ...

Classes are ``SYNTH_CLASSES`` with contiguous category ids 1..C. Image sides vary
(``image_size`` +- ``size_jitter``, not square) so letterbox and keep-ratio placement are
exercised. Everything is a pure function of ``seed``: the same arguments give
byte-identical JSON and images, and image *i* of a split does not depend on how many
images come before or after it. The drawing itself lives in ``sdk.data.shapes``.

Difficulty knobs (keyword arguments): ``objects_per_image``, ``object_size``,
``max_aspect``, ``clutter``, ``empty_fraction``, ``max_overlap``, ``max_occlusion``,
``max_truncation``, ``size_jitter``; ``segmentation`` chooses how each object's
instance mask is written (``"rle"``, exact: the pixels where the object is visible,
later objects' occlusion applied; ``"polygon"``, its outer contours; ``None``, boxes
only). The defaults aim at "a detector must really
localize, yet a tiny one trained from scratch on a CPU learns it in minutes".
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from sdk.data.shapes import SHAPE_KINDS, RenderParams, render_image
from sdk.errors import ConfigError

logger = logging.getLogger(__name__)

SYNTH_CLASSES: tuple[str, ...] = SHAPE_KINDS
"""Category names of the synthetic dataset, in category-id order (ids 1..C)."""

_SPLIT_CODES = {"train": 1, "val": 2}  # part of each image's seed: splits never share images
_SAMPLE_CODE = 3  # the same for synthetic_images, which never repeats a dataset image


@dataclass(frozen=True)
class SynthPaths:
    """Where ``generate_synthetic_coco`` wrote the dataset."""

    root: Path
    train_json: Path
    val_json: Path
    images_dir: Path


@dataclass(frozen=True)
class SynthConfig:
    """All generation settings; see ``generate_synthetic_coco`` for their meaning."""

    image_size: int = 320
    size_jitter: float = 0.25
    objects_per_image: tuple[int, int] = (1, 6)
    object_size: tuple[float, float] = (24.0, 120.0)
    max_aspect: float = 1.5
    clutter: float = 0.5
    empty_fraction: float = 0.05
    max_overlap: float = 0.3
    max_occlusion: float = 0.7
    max_truncation: float = 0.2
    classes: tuple[str, ...] = SYNTH_CLASSES
    jpeg_quality: int = 92
    segmentation: str | None = "rle"

    def __post_init__(self) -> None:
        for name in ("objects_per_image", "object_size", "classes"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        lo, hi = self.objects_per_image
        checks = [
            ("image_size", self.image_size >= 32, ">= 32"),
            ("size_jitter", 0 <= self.size_jitter < 1, "in [0, 1)"),
            ("objects_per_image", 0 <= lo <= hi, "(lo, hi) with 0 <= lo <= hi"),
            ("object_size", 0 < self.object_size[0] <= self.object_size[1], "(lo, hi) with 0 < lo <= hi"),
            ("max_aspect", self.max_aspect >= 1, ">= 1"),
            ("clutter", 0 <= self.clutter <= 1, "in [0, 1]"),
            ("empty_fraction", 0 <= self.empty_fraction <= 1, "in [0, 1]"),
            ("max_overlap", 0 <= self.max_overlap <= 1, "in [0, 1]"),
            ("max_occlusion", 0 <= self.max_occlusion <= 1, "in [0, 1]"),
            ("max_truncation", 0 <= self.max_truncation < 0.5, "in [0, 0.5)"),
            ("classes", 0 < len(set(self.classes)) == len(self.classes) and set(self.classes) <= set(SHAPE_KINDS),
             f"distinct names from {SHAPE_KINDS}"),
            ("jpeg_quality", 1 <= self.jpeg_quality <= 100, "in 1..100"),
            ("segmentation", self.segmentation in ("rle", "polygon", None), "'rle', 'polygon' or None"),
        ]
        for name, ok, requirement in checks:
            if not ok:
                raise ConfigError(f"synthetic dataset: {name} must be {requirement}, got {getattr(self, name)!r}")
        smallest_side = self.image_size * (1 - self.size_jitter)
        if self.object_size[0] > 0.9 * smallest_side:
            raise ConfigError(
                f"synthetic dataset: object_size {self.object_size} does not fit images of side "
                f"{smallest_side:.0f}; lower object_size or raise image_size"
            )

    @property
    def render_params(self) -> RenderParams:
        return RenderParams(
            kinds=self.classes,
            num_objects=self.objects_per_image,
            object_size=self.object_size,
            max_aspect=self.max_aspect,
            clutter=self.clutter,
            max_overlap=self.max_overlap,
            max_occlusion=self.max_occlusion,
            max_truncation=self.max_truncation,
        )


def generate_synthetic_coco(
    out_dir: str | Path,
    *,
    num_train: int = 800,
    num_val: int = 200,
    image_size: int = 320,
    seed: int = 0,
    size_jitter: float = 0.25,
    objects_per_image: tuple[int, int] = (1, 6),
    object_size: tuple[float, float] = (24.0, 120.0),
    max_aspect: float = 1.5,
    clutter: float = 0.5,
    empty_fraction: float = 0.05,
    max_overlap: float = 0.3,
    max_occlusion: float = 0.7,
    max_truncation: float = 0.2,
    classes: Sequence[str] = SYNTH_CLASSES,
    jpeg_quality: int = 92,
    segmentation: str | None = "rle",
    progress: bool = True,
) -> SynthPaths:
    """Write a synthetic COCO detection dataset under ``out_dir``; return its paths.

    Args:
        num_train, num_val: images per split.
        image_size: nominal image side in pixels; each side is drawn uniformly from
            ``image_size * (1 +- size_jitter)`` (default 240..400 px).
        seed: the only source of randomness.
        objects_per_image: (lo, hi) inclusive number of objects drawn per image (objects
            that do not fit without too much overlap, or end up hidden, are dropped).
        object_size: (lo, hi) long side of an object's box in pixels (log-uniform).
        max_aspect: largest stretch of a shape along one axis (1 = no stretch).
        clutter: 0 = plain gradient backgrounds; 1 = strong texture, many distractor
            blobs/lines/arcs, strong noise.
        empty_fraction: share of images drawn with no object at all.
        max_overlap: largest share of an object that one later object may cover.
        max_occlusion: objects hidden by more than this share go unannotated.
        max_truncation: largest share of an object's extent that may leave the image.
        classes: the shape classes to draw (a subset of ``SYNTH_CLASSES``); category ids
            are 1..len(classes) in this order.
        jpeg_quality: JPEG quality of the written images.
        segmentation: each annotation's ``segmentation``: ``"rle"`` (COCO compressed RLE
            of the exact visible pixels), ``"polygon"`` (outer contours; a ring's hole is
            filled, as COCO polygons cannot express holes) or ``None`` (none written).
        progress: show a tqdm progress bar.
    """
    if num_train < 0 or num_val < 0:
        raise ConfigError(f"num_train and num_val must be >= 0, got {num_train}, {num_val}")
    config = SynthConfig(
        image_size=image_size, size_jitter=size_jitter, objects_per_image=objects_per_image,
        object_size=object_size, max_aspect=max_aspect, clutter=clutter, empty_fraction=empty_fraction,
        max_overlap=max_overlap, max_occlusion=max_occlusion, max_truncation=max_truncation,
        classes=tuple(classes), jpeg_quality=jpeg_quality, segmentation=segmentation,
    )
    root = Path(out_dir)
    paths = SynthPaths(root, root / "annotations" / "train.json", root / "annotations" / "val.json", root / "images")
    paths.train_json.parent.mkdir(parents=True, exist_ok=True)
    from tqdm import tqdm

    with tqdm(total=num_train + num_val, desc="synthesizing images", unit="img", disable=not progress) as bar:
        for split, count, json_path in (("train", num_train, paths.train_json), ("val", num_val, paths.val_json)):
            coco = _write_split(split, count, seed, config, paths.images_dir, bar)
            json_path.write_text(json.dumps(coco, separators=(",", ":")) + "\n")
    logger.info("wrote synthetic dataset (%d train, %d val images) to %s", num_train, num_val, root)
    return paths


def _write_split(split: str, count: int, seed: int, config: SynthConfig, images_dir: Path, bar: Any) -> dict[str, Any]:
    """Render and write the images of one split; return its COCO dict."""
    (images_dir / split).mkdir(parents=True, exist_ok=True)
    params = config.render_params
    images, annotations = [], []
    for index in range(count):
        rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
        height, width = _image_shape(rng, config)
        empty = bool(rng.random() < config.empty_fraction)
        rendered = render_image(rng, height, width, params, empty=empty)
        file_name = f"{split}/{index + 1:06d}.jpg"
        _write_jpeg(images_dir / file_name, rendered.image, config.jpeg_quality)
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height})
        for k, obj in enumerate(rendered.objects):
            x1, y1, x2, y2 = obj.box
            annotation = {
                "id": len(annotations) + 1,
                "image_id": image_id,
                "category_id": obj.label + 1,
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "area": obj.area,
                "iscrowd": 0,
            }
            if config.segmentation is not None:
                # the pixels where this object is seen: later objects' occlusion applied
                annotation["segmentation"] = _segmentation(rendered.instances == k, config.segmentation)
            annotations.append(annotation)
        bar.update(1)
    return {
        "info": {
            "description": f"sdk synthetic shapes ({split})",
            "version": "1",
            "seed": seed,
            "generator": "sdk.data.synthetic.generate_synthetic_coco",
            "config": _jsonable(config),
        },
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(config.classes)],
    }


def _segmentation(mask: np.ndarray, kind: str) -> Any:
    from sdk.data.segmentation import mask_polygons
    from sdk.masks import encode_rle

    polygons = mask_polygons(mask) if kind == "polygon" else []
    return polygons or encode_rle(mask)  # RLE where no contour has 3 points (a sliver)


def _image_shape(rng: np.random.Generator, config: SynthConfig) -> tuple[int, int]:
    lo, hi = config.image_size * (1 - config.size_jitter), config.image_size * (1 + config.size_jitter)
    height, width = (int(round(rng.uniform(lo, hi))) for _ in range(2))
    return height, width


def synthetic_images(count: int, *, size: tuple[int, int] | None = None, seed: int = 0) -> list[np.ndarray]:
    """``count`` shapes images, (H, W, 3) uint8 RGB, drawn as the dataset's (default
    ``SynthConfig``) but without annotations: inputs for checks and timing without data
    (export verification, ``sdk benchmark``, tests). The one synthetic-image source.

    ``size`` (H, W) for every image; ``None`` draws each side in 200..520 px, so the
    images differ in size and aspect (and none has a typical network input's size).
    Image *i* is a pure function of ``(seed, i)``.
    """
    # full clutter: textured everywhere, so random-weight models score few ties in parity tests
    params = SynthConfig(clutter=1.0).render_params
    images = []
    for index in range(count):
        rng = np.random.default_rng([seed, _SAMPLE_CODE, index])
        height, width = size if size is not None else (int(v) for v in rng.integers(200, 521, size=2))
        images.append(render_image(rng, height, width, params).image)
    return images


def encode_jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes (OpenCV, ``quality`` 1..100)."""
    ok, data = cv2.imencode(".jpg", np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 BGR array
        raise RuntimeError("OpenCV failed to encode a JPEG")
    return data.tobytes()


def _write_jpeg(path: Path, rgb: np.ndarray, quality: int) -> None:
    path.write_bytes(encode_jpeg(rgb, quality))


def _jsonable(config: SynthConfig) -> dict[str, Any]:
    out = asdict(config)
    return {f.name: list(out[f.name]) if isinstance(out[f.name], tuple) else out[f.name] for f in fields(config)}
