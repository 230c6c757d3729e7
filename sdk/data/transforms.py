"""Training and evaluation transforms for detection, ending in the deploy-time placement.

Both pipelines take what ``CocoDetection`` yields, ``(image, target)`` with ``image``
(H, W, 3) uint8 RGB numpy and ``target["boxes"]`` float32 [M, 4] xyxy original pixels,
and return a *sample* ``(image, target, record)``:

- ``image``: uint8 torch tensor [3, h_in, w_in], the network input before
  normalization;
- ``target``: ``boxes`` float32 [M, 4] xyxy in network-input pixels, ``labels`` int64
  [M], ``image_id`` and ``orig_size`` (H, W) of the image as loaded; when the dataset
  gives ``masks`` (uint8 [M, H, W], ``CocoDetection(masks=True)``) they go through the
  same flips, jitter and placement (nearest-neighbour resize, zero padding) and come
  out uint8 [M, h_in, w_in];
- ``record``: the ``sdk.preprocess.ImageRecord`` of the placement.

The last step of both is ``sdk.preprocess.preprocess_image`` (the very function every
backend's preprocessing runs), with boxes mapped by the returned
``ImageRecord.boxes_to_input``: training and deployment place images identically by
construction. Training augmentation before it uses torchvision transforms v2 on
``tv_tensors`` (horizontal flip, photometric distortion, scale jitter), so the record
of a training sample describes the *augmented* image; eval records map back to the
original image.

Normalization is not done here: batches stay uint8 (a quarter of the bytes through
the DataLoader) and the trainer normalizes on the device with the ``Preprocess``
mean/std, ``(x.float() - mean) / std``, the arithmetic of ``Preprocess.normalize``.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import cv2
import numpy as np
import torch
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from sdk.preprocess import ImageRecord, Preprocess, preprocess_image

Sample = tuple[torch.Tensor, dict[str, Any], ImageRecord]


class RandomScaleJitter(v2.Transform):
    """Zoom the content by a random factor relative to the later fixed-size placement.

    A scale ``s`` is drawn log-uniformly from ``scale_range``; the image is cropped
    (``s > 1``, zoom in) or padded with ``fill`` (``s < 1``, zoom out) to a window of
    (H / s, W / s) at a random position. As the placement then fits that window to the
    network input, objects end up ``s`` times their un-augmented size (large-scale
    jitter, as in detectron2 / torchvision references, but expressed through the
    placement). Boxes are shifted and clipped to the window; a box keeping less than
    ``min_visible`` of its area is emptied so ``v2.SanitizeBoundingBoxes`` drops it.
    """

    def __init__(self, scale_range: tuple[float, float], *, fill: int = 114, min_visible: float = 0.3) -> None:
        super().__init__()
        lo, hi = scale_range
        if not 0 < lo <= hi:
            raise ValueError(f"scale_range must be (lo, hi) with 0 < lo <= hi, got {scale_range}")
        self.scale_range = (float(lo), float(hi))
        self.fill = fill
        self.min_visible = min_visible

    def make_params(self, flat_inputs: list[Any]) -> dict[str, Any]:
        height, width = v2.query_size(flat_inputs)
        lo, hi = self.scale_range
        scale = math.exp(math.log(lo) + torch.rand(()).item() * (math.log(hi) - math.log(lo)))
        win_h, win_w = max(1, round(height / scale)), max(1, round(width / scale))
        # window origin in image coordinates: inside the image when zooming in,
        # negative (padding before the image) when zooming out
        top = round((height - win_h) * torch.rand(()).item())
        left = round((width - win_w) * torch.rand(()).item())
        pad = [max(0, -left), max(0, -top), max(0, left + win_w - width), max(0, top + win_h - height)]
        return {"padding": pad, "top": max(0, top), "left": max(0, left), "height": win_h, "width": win_w}

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        fill = self.fill if isinstance(inpt, (tv_tensors.Image, tv_tensors.Video)) else 0  # masks pad with 0
        padded = self._call_kernel(F.pad, inpt, padding=params["padding"], fill=fill)
        out = self._call_kernel(F.crop, padded, params["top"], params["left"], params["height"], params["width"])
        if isinstance(inpt, tv_tensors.BoundingBoxes) and len(inpt):
            before = _areas(padded)
            lost = _areas(out) < self.min_visible * before
            out = tv_tensors.wrap(torch.where(lost[:, None], torch.zeros_like(out), out), like=out)
        return out


def _areas(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


class DetectionTransform:
    """``(image, target) -> (image, target, record)``: optional v2 augmentation, then the
    ``Preprocess`` placement (see the module docstring)."""

    def __init__(self, preprocess: Preprocess, augment: v2.Transform | None = None) -> None:
        self.preprocess = preprocess
        self.augment = augment

    def __repr__(self) -> str:
        return f"{type(self).__name__}(augment={self.augment!r}, preprocess={self.preprocess!r})"

    def __call__(self, image: np.ndarray, target: dict[str, Any]) -> Sample:
        boxes = np.asarray(target["boxes"], np.float32).reshape(-1, 4)
        labels = torch.as_tensor(np.asarray(target["labels"]), dtype=torch.int64)
        masks = np.asarray(target["masks"], np.uint8) if "masks" in target else None
        if self.augment is not None:
            tv_image = tv_tensors.Image(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1))
            tv_boxes = tv_tensors.BoundingBoxes(torch.from_numpy(boxes), format="XYXY", canvas_size=image.shape[:2])
            inputs = {"boxes": tv_boxes, "labels": labels}
            if masks is not None:  # a tv_tensors.Mask [M, H, W] moves and is sanitized with its box
                inputs["masks"] = tv_tensors.Mask(torch.from_numpy(masks))
            tv_image, aug = self.augment(tv_image, inputs)
            image = np.ascontiguousarray(tv_image.permute(1, 2, 0).numpy())
            boxes, labels = aug["boxes"].as_subclass(torch.Tensor).numpy(), aug["labels"]
            if masks is not None:
                masks = aug["masks"].as_subclass(torch.Tensor).numpy()
        placed, record = preprocess_image(image, self.preprocess)
        out = {k: v for k, v in target.items() if k not in ("boxes", "labels", "masks")}
        out["boxes"] = torch.from_numpy(record.boxes_to_input(boxes).reshape(-1, 4))
        out["labels"] = labels
        if masks is not None:
            out["masks"] = torch.from_numpy(place_masks(masks, record))
        return torch.from_numpy(placed).permute(2, 0, 1).contiguous(), out, record


def place_masks(masks: np.ndarray, record: ImageRecord) -> np.ndarray:
    """uint8 [M, H, W] masks of an image -> uint8 [M, h_in, w_in] network-input masks,
    placed as ``preprocess_image`` placed the image (resize by ``record.scale``, nearest
    neighbour so they stay binary; offset by ``record.pad``; zeros elsewhere)."""
    height, width = masks.shape[-2:]
    new_h, new_w = int(round(height * record.scale[0])), int(round(width * record.scale[1]))
    top, left = record.pad
    out = np.zeros((masks.shape[0], *record.input_hw), np.uint8)
    for i, mask in enumerate(masks):
        resized = mask if (new_h, new_w) == (height, width) else cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_NEAREST)
        out[i, top : top + new_h, left : left + new_w] = resized
    return out


def build_train_transforms(
    preprocess: Preprocess,
    *,
    hflip: float = 0.5,
    scale_jitter: tuple[float, float] | None = (0.75, 1.25),
    photometric: bool = True,
) -> DetectionTransform:
    """Training pipeline: horizontal flip with probability ``hflip``, photometric
    distortion (``v2.RandomPhotometricDistort``: brightness, contrast, saturation, hue,
    channel order, each with p = 0.5) when ``photometric``, scale jitter over
    ``scale_range`` (``None`` or (1, 1) disables it), then the ``preprocess`` placement.
    Returns samples as described in the module docstring."""
    steps: list[v2.Transform] = []
    if hflip > 0:
        steps.append(v2.RandomHorizontalFlip(p=hflip))
    if photometric:
        steps.append(v2.RandomPhotometricDistort(p=0.5))
    if scale_jitter is not None and tuple(scale_jitter) != (1.0, 1.0):
        steps.append(RandomScaleJitter(tuple(scale_jitter), fill=preprocess.pad_value))  # type: ignore[arg-type]
    steps.append(v2.SanitizeBoundingBoxes(min_size=1.0))
    return DetectionTransform(preprocess, v2.Compose(steps))


def build_eval_transforms(preprocess: Preprocess) -> DetectionTransform:
    """Evaluation pipeline: only the ``preprocess`` placement (records map to the original)."""
    return DetectionTransform(preprocess)


def collate_detection(batch: Sequence[Sample], *, pad_value: int = 114) -> tuple[torch.Tensor, list[dict[str, Any]], list[ImageRecord]]:
    """Stack samples into ``(images, targets, records)`` for a DataLoader.

    ``images`` uint8 [B, 3, H, W]; samples of different sizes (keep_ratio without a
    canvas) are padded bottom-right with ``pad_value`` to the largest, as
    ``sdk.preprocess.preprocess_batch`` does (pass the ``Preprocess.pad_value`` through
    ``functools.partial`` if it is not the default 114), and their records' ``input_hw``
    updated. ``targets``: per image ``boxes`` float32 [M, 4] xyxy network-input pixels,
    ``labels`` int64 [M], ``image_id`` (and ``orig_size``), ``masks`` uint8 [M, H, W]
    padded with zeros as the images are, when the samples have them. Not normalized.
    """
    if len(batch) == 0:
        raise ValueError("collate_detection needs at least one sample")
    if len(batch[0]) != 3:
        raise TypeError(
            "collate_detection takes (image, target, record) samples: give the dataset "
            "transforms=build_train_transforms(...) or build_eval_transforms(...)"
        )
    images, targets, records = zip(*batch)
    height, width = max(im.shape[1] for im in images), max(im.shape[2] for im in images)
    if all(im.shape[1:] == (height, width) for im in images):
        stacked = torch.stack(images)
    else:
        stacked = torch.full((len(images), 3, height, width), pad_value, dtype=torch.uint8)
        for i, im in enumerate(images):
            stacked[i, :, : im.shape[1], : im.shape[2]] = im
        targets = tuple(_pad_masks(t, height, width) for t in targets)
    records = [
        r if r.input_hw == (height, width) else ImageRecord(r.orig_hw, (height, width), r.scale, r.pad) for r in records
    ]
    return stacked, list(targets), records


def _pad_masks(target: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    """``target`` with its ``masks`` (if any) zero-padded bottom-right to (height, width)."""
    masks = target.get("masks")
    if masks is None or masks.shape[-2:] == (height, width):
        return target
    padded = torch.zeros((masks.shape[0], height, width), dtype=masks.dtype)
    padded[:, : masks.shape[1], : masks.shape[2]] = masks
    return {**target, "masks": padded}
