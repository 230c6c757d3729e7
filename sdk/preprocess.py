"""The preprocessing record: the one source of truth for how images enter a network.

A frozen ``Preprocess`` is stored (as JSON) in every checkpoint and model_dir. Eager
evaluation, export, the runtime and the server all call ``preprocess_batch`` below, so
deploy-time preprocessing cannot drift from training.

Conventions
- Images enter as (H, W, 3) uint8 **RGB** arrays (see ``sdk.images.load_image``).
- The network input is ``[B, 3, H, W]``: uint8 when ``normalize_in_graph`` (the
  exported graph computes ``(x - mean) / std``), else float32 already normalized.
- ``mean``/``std`` are RGB on the 0-255 scale.
- Resized content is placed at the top-left corner (or centred with
  ``pad_position="center"``) and the rest is filled with ``pad_value``.
- Boxes map back with ``ImageRecord``: ``x_orig = (x_net - pad_left) / scale_x``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable, Iterable, Sequence

import cv2
import numpy as np

from sdk.errors import ConfigError

_INTERPOLATIONS = {
    "bilinear": cv2.INTER_LINEAR,
    "nearest": cv2.INTER_NEAREST,
    "area": cv2.INTER_AREA,
    "bicubic": cv2.INTER_CUBIC,
}
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class Preprocess:
    """How an RGB uint8 image becomes the network input.

    Attributes:
        mode: ``"letterbox"`` scales the image to fit ``size`` = (H, W) keeping its
            aspect ratio and pads to exactly (H, W) (static shape: the export default).
            ``"keep_ratio"`` scales so the short side is ``size[0]`` and the long side at
            most ``size[1]`` (torchvision's ``min_size``/``max_size``), then pads each side
            up to a multiple of ``pad_divisor``, or to ``canvas`` when one is set.
        size: see ``mode``.
        pad_divisor: keep_ratio padding granularity (the backbone's largest stride).
        canvas: fixed (H, W) a keep_ratio image is padded to, giving a static shape for
            export; ``None`` pads per image (eager only).
        pad_value: fill value (0-255) of padded pixels, before normalization.
        pad_position: ``"top_left"`` (content at the origin) or ``"center"``.
        interpolation: ``"bilinear"``, ``"nearest"``, ``"area"`` or ``"bicubic"``.
        mean, std: RGB normalization constants on the 0-255 scale.
        normalize_in_graph: the network takes uint8 and normalizes itself (default:
            a quarter of the bytes moved to a GPU or over the network).
    """

    mode: str = "letterbox"
    size: tuple[int, int] = (320, 320)
    pad_divisor: int = 32
    canvas: tuple[int, int] | None = None
    pad_value: int = 114
    pad_position: str = "top_left"
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    normalize_in_graph: bool = True

    def __post_init__(self) -> None:
        for name in ("size", "mean", "std", "canvas"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        if self.mode not in ("letterbox", "keep_ratio"):
            raise ConfigError(f"Preprocess.mode must be 'letterbox' or 'keep_ratio', got {self.mode!r}")
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ConfigError(f"Preprocess.size must be two positive ints, got {self.size!r}")
        if self.mode == "keep_ratio" and self.size[0] > self.size[1]:
            raise ConfigError(f"keep_ratio size is (short, long max); got {self.size!r}")
        if self.interpolation not in _INTERPOLATIONS:
            raise ConfigError(
                f"Preprocess.interpolation must be one of {sorted(_INTERPOLATIONS)}, got {self.interpolation!r}"
            )
        if self.pad_position not in ("top_left", "center"):
            raise ConfigError(f"Preprocess.pad_position must be 'top_left' or 'center', got {self.pad_position!r}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("Preprocess.mean and std need three values each, std > 0")
        if not 0 <= self.pad_value <= 255:
            raise ConfigError(f"Preprocess.pad_value must be in 0..255, got {self.pad_value}")
        if self.pad_divisor < 1:
            raise ConfigError(f"Preprocess.pad_divisor must be >= 1, got {self.pad_divisor}")

    # -- shapes -------------------------------------------------------------------
    @property
    def static_shape(self) -> tuple[int, int] | None:
        """(H, W) every network input has, or ``None`` when it varies per image."""
        if self.mode == "letterbox":
            return tuple(self.size)  # type: ignore[return-value]
        return tuple(self.canvas) if self.canvas is not None else None  # type: ignore[return-value]

    def with_static_shape(self, shape: tuple[int, int] | None = None) -> "Preprocess":
        """A copy with a static input shape, for export.

        letterbox: ``shape`` replaces ``size`` (default: unchanged). keep_ratio: the same
        scaling with a fixed ``canvas``; the default canvas holds any aspect ratio
        (long side x long side, rounded up to ``pad_divisor``).
        """
        from dataclasses import replace

        if self.mode == "letterbox":
            return self if shape is None else replace(self, size=tuple(shape))
        if shape is None:
            side = _round_up(self.size[1], self.pad_divisor)
            shape = (side, side)
        return replace(self, canvas=tuple(shape))

    # -- (de)serialization ---------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Preprocess":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown preprocess keys {sorted(unknown)}; known: {sorted(known)}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    # -- arithmetic shared with the graphs ------------------------------------------
    def normalize(self, batch: np.ndarray) -> np.ndarray:
        """(x - mean) / std over channel axis 1 of a [B, 3, H, W] array -> float32."""
        mean = np.asarray(self.mean, np.float32).reshape(1, 3, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, 3, 1, 1)
        return (batch.astype(np.float32) - mean) / std


@dataclass(frozen=True)
class ImageRecord:
    """How one original image was placed into the network input.

    ``orig_hw`` original (H, W); ``input_hw`` (H, W) of the network input it sits in;
    ``scale`` (sy, sx) = resized / original per axis; ``pad`` (top, left) offset of the
    resized content inside the input.
    """

    orig_hw: tuple[int, int]
    input_hw: tuple[int, int]
    scale: tuple[float, float]
    pad: tuple[int, int] = (0, 0)

    @property
    def content_hw(self) -> tuple[int, int]:
        """(h, w) of the resized image inside the network input (before padding)."""
        return (int(round(self.orig_hw[0] * self.scale[0])), int(round(self.orig_hw[1] * self.scale[1])))

    def boxes_to_original(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) xyxy boxes in network-input pixels to original pixels, clipped."""
        out = np.asarray(boxes, dtype=np.float32).copy()
        sy, sx = self.scale
        top, left = self.pad
        out[:, 0::2] = (out[:, 0::2] - left) / sx
        out[:, 1::2] = (out[:, 1::2] - top) / sy
        h, w = self.orig_hw
        np.clip(out[:, 0::2], 0, w, out=out[:, 0::2])
        np.clip(out[:, 1::2], 0, h, out=out[:, 1::2])
        return out

    def boxes_to_input(self, boxes: np.ndarray) -> np.ndarray:
        """Map (N, 4) xyxy boxes in original pixels to network-input pixels."""
        out = np.asarray(boxes, dtype=np.float32).copy()
        sy, sx = self.scale
        top, left = self.pad
        out[:, 0::2] = out[:, 0::2] * sx + left
        out[:, 1::2] = out[:, 1::2] * sy + top
        return out


def _round_up(value: int, divisor: int) -> int:
    return int(-(-value // divisor) * divisor)


def resize_scale(pre: Preprocess, h: int, w: int) -> float:
    """The isotropic scale ``pre`` applies to an (h, w) image."""
    if pre.mode == "letterbox":
        return min(pre.size[0] / h, pre.size[1] / w)
    short, long_max = pre.size
    scale = min(short / min(h, w), long_max / max(h, w))
    if pre.canvas is not None:  # a fixed canvas must hold the image whatever its aspect
        scale = min(scale, pre.canvas[0] / h, pre.canvas[1] / w)
    return scale


def resized_hw(pre: Preprocess, h: int, w: int) -> tuple[int, int]:
    """The (height, width) of an (h, w) image's content after resizing, before padding.

    letterbox rounds ``h * scale``; keep_ratio floors it, as torchvision's
    ``GeneralizedRCNNTransform`` (``F.interpolate(scale_factor=...)``) does, so a
    640 x 480 photo becomes 1066 x 800 in both and detections can match torchvision's.
    """
    scale = resize_scale(pre, h, w)
    if pre.mode == "keep_ratio":
        return max(1, math.floor(h * scale)), max(1, math.floor(w * scale))
    return max(1, int(round(h * scale))), max(1, int(round(w * scale)))


def _target_hw(pre: Preprocess, new_h: int, new_w: int) -> tuple[int, int]:
    static = pre.static_shape
    if static is not None:
        return static
    return _round_up(new_h, pre.pad_divisor), _round_up(new_w, pre.pad_divisor)


def input_hw(pre: Preprocess, h: int, w: int) -> tuple[int, int]:
    """The (height, width) of the network input ``pre`` makes of an (h, w) image."""
    return _target_hw(pre, *resized_hw(pre, h, w))


def dynamic_input_range(pre: Preprocess) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """``(min, typical, max)`` network-input (H, W) of a varying-shape record (keep_ratio
    without a canvas): each side a multiple of ``pad_divisor``, from one divisor (an
    extreme aspect ratio's short side) to the long-side limit rounded up; typical is a
    landscape photo's (short, long). TensorRT's optimization profile and the exporter's
    dynamic dimensions use these bounds."""
    if pre.static_shape is not None:
        raise ConfigError("dynamic_input_range needs a keep_ratio Preprocess without a canvas")
    short, long_max = (_round_up(side, pre.pad_divisor) for side in pre.size)
    return (pre.pad_divisor, pre.pad_divisor), (short, long_max), (long_max, long_max)


def preprocess_image(image: np.ndarray, pre: Preprocess, out: np.ndarray | None = None) -> tuple[np.ndarray, ImageRecord]:
    """Resize and pad one (H, W, 3) uint8 RGB image.

    Returns the padded (h_in, w_in, 3) uint8 HWC image (written into ``out`` when
    given, which must be at least that large) and its ``ImageRecord``.
    """
    h, w = image.shape[:2]
    new_h, new_w = resized_hw(pre, h, w)
    in_h, in_w = _target_hw(pre, new_h, new_w)
    new_h, new_w = min(new_h, in_h), min(new_w, in_w)
    if (new_h, new_w) != (h, w):
        resized = cv2.resize(image, (new_w, new_h), interpolation=_INTERPOLATIONS[pre.interpolation])
    else:
        resized = image
    top, left = (0, 0)
    if pre.pad_position == "center":
        top, left = (in_h - new_h) // 2, (in_w - new_w) // 2
    canvas = out[:in_h, :in_w] if out is not None else np.empty((in_h, in_w, 3), np.uint8)
    canvas[...] = pre.pad_value
    canvas[top : top + new_h, left : left + new_w] = resized
    record = ImageRecord(orig_hw=(h, w), input_hw=(in_h, in_w), scale=(new_h / h, new_w / w), pad=(top, left))
    return canvas, record


def preprocess_batch(
    images: Sequence[Any], pre: Preprocess, *, load: Callable[[Any], np.ndarray] | None = None
) -> tuple[np.ndarray, list[ImageRecord]]:
    """Preprocess RGB uint8 images into one network batch.

    ``load`` (e.g. ``sdk.images.load_image``), when given, turns each item of
    ``images`` into its RGB array just before the item is placed, so only one decoded
    full-size image is alive at a time.

    Returns ``(batch, records)``: ``batch`` is [B, 3, H, W], uint8 when
    ``pre.normalize_in_graph`` else float32 normalized; images of a varying-shape
    (keep_ratio, no canvas) record are padded bottom-right to the largest in the batch.
    """
    if len(images) == 0:
        raise ValueError("preprocess_batch needs at least one image")
    arrays = images if load is None else (load(item) for item in images)
    static = pre.static_shape
    if static is not None:
        # One HWC scratch canvas, each image copied straight into the NCHW batch: few large
        # temporaries (allocator churn and page faults cost more than the copies here).
        nchw = np.empty((len(images), 3, *static), np.uint8)
        scratch = np.empty((*static, 3), np.uint8)
        records = []
        for i, image in enumerate(arrays):
            padded, record = preprocess_image(image, pre, out=scratch)
            nchw[i] = padded.transpose(2, 0, 1)
            records.append(record)
    else:
        padded_images, records = zip(*(preprocess_image(image, pre) for image in arrays))
        return assemble_batch(padded_images, records, pre)
    if not pre.normalize_in_graph:
        nchw = pre.normalize(nchw)
    return nchw, list(records)


def assemble_batch(
    padded_images: Sequence[np.ndarray], records: Sequence[ImageRecord], pre: Preprocess
) -> tuple[np.ndarray, list[ImageRecord]]:
    """``preprocess_image`` outputs (padded (h, w, 3) uint8 HWC) -> one [B, 3, H, W] batch as
    ``preprocess_batch`` returns it: padded bottom-right to the largest, normalized unless
    ``pre.normalize_in_graph``."""
    H = max(p.shape[0] for p in padded_images)
    W = max(p.shape[1] for p in padded_images)
    nchw = np.empty((len(padded_images), 3, H, W), np.uint8)
    for i, p in enumerate(padded_images):
        h, w = p.shape[:2]
        if (h, w) != (H, W):
            nchw[i] = pre.pad_value
        nchw[i, :, :h, :w] = p.transpose(2, 0, 1)
    records = [r if r.input_hw == (H, W) else ImageRecord(r.orig_hw, (H, W), r.scale, r.pad) for r in records]
    if not pre.normalize_in_graph:
        nchw = pre.normalize(nchw)
    return nchw, list(records)


def content_sizes(records: Sequence[ImageRecord]) -> np.ndarray:
    """int64 [B, 2]: each record's content (h, w), the ``image_sizes`` a backend takes
    (``sdk.runtime.base.Backend.infer``) so a dynamic-shape graph pads and clips as
    torchvision does."""
    return np.array([r.content_hw for r in records], np.int64).reshape(-1, 2)


def iter_chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    """Consecutive slices of ``items`` of at most ``size`` elements."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
