"""Turn the fixed-shape detection contract into ``Detections`` (docs/architecture.md, contract 2).

Every backend and flavor ends in::

    num_dets int32   [B, 1]     valid rows per image
    boxes    float32 [B, K, 4]  x1, y1, x2, y2 in network-input pixels
    scores   float32 [B, K]     descending per image
    labels   int32   [B, K]     0-based index into the class list
    masks    float32 [B, K, M, M]  (instance segmentation only) mask probabilities
                                   spanning each box

Rows past ``num_dets`` are padding. This module is the single place where those
rows become per-image ``Detections`` in original-image pixels (``decode_outputs``; masks
are pasted here, by ``sdk.masks.paste_masks``, for every backend and the eager evaluation
alike), and where per-image detections are packed into them (``pack_detections``: the
eager torch backend, the server's responses).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from sdk.detections import Detections
from sdk.masks import paste_masks
from sdk.preprocess import ImageRecord

OUTPUT_NAMES = ("num_dets", "boxes", "scores", "labels")


def decode_outputs(
    outputs: Mapping[str, np.ndarray],
    records: Sequence[ImageRecord],
    class_names: Sequence[str],
    *,
    score_thr: float = 0.0,
) -> list[Detections]:
    """Split a batch of contract outputs into one ``Detections`` per record.

    ``outputs`` may hold more rows than ``records`` (a padded batch): the extra rows
    are ignored. With a ``masks`` output each ``Detections`` gets ``masks`` bool
    (N, H, W) in original-image pixels: the M x M probabilities pasted into the box
    mapped to the original image *before* clipping (the grid spans the whole box,
    padding included) and thresholded at ``sdk.masks.MASK_THRESHOLD``.
    """
    missing = [n for n in OUTPUT_NAMES if n not in outputs]
    if missing:
        raise ValueError(f"backend outputs lack {missing}; got {sorted(outputs)}")
    num = np.asarray(outputs["num_dets"]).reshape(-1)
    boxes, scores, labels = outputs["boxes"], outputs["scores"], outputs["labels"]
    result = []
    for i, record in enumerate(records):
        n = int(num[i])
        s = np.asarray(scores[i, :n], np.float32)
        keep = s >= score_thr if score_thr > 0 else slice(None)
        kept = np.asarray(boxes[i, :n], np.float32)[keep]
        masks = None
        if "masks" in outputs:
            masks = paste_masks(np.asarray(outputs["masks"][i, :n], np.float32)[keep], _unclipped_original(record, kept),
                                record.orig_hw)
        b = record.boxes_to_original(kept)
        result.append(Detections(b, s[keep], np.asarray(labels[i, :n], np.int64)[keep], class_names, masks))
    return result


def _unclipped_original(record: ImageRecord, boxes: np.ndarray) -> np.ndarray:
    """(N, 4) xyxy network-input boxes in original pixels, not clipped to the image."""
    sy, sx = record.scale
    top, left = record.pad
    out = boxes.astype(np.float32).copy()
    out[:, 0::2] = (out[:, 0::2] - left) / sx
    out[:, 1::2] = (out[:, 1::2] - top) / sy
    return out


def pack_detections(
    per_image: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    *,
    max_det: int,
    masks: Sequence[np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """Per-image ``(boxes (N, 4) xyxy, scores (N,), labels (N,))`` -> contract 2.

    Returns ``num_dets`` int32 [B, 1], ``boxes`` float32 [B, K, 4], ``scores`` float32
    [B, K] descending, ``labels`` int32 [B, K] with K = ``max_det``, zero past
    ``num_dets``. Rows are ordered by score (a stable sort: equal scores keep their
    order); an image with more than K detections keeps its K best. ``masks``: per image
    float32 (N, M, M) mask probabilities (Mask R-CNN), packed into ``masks`` [B, K, M, M].
    """
    b = len(per_image)
    out = {
        "num_dets": np.zeros((b, 1), np.int32),
        "boxes": np.zeros((b, max_det, 4), np.float32),
        "scores": np.zeros((b, max_det), np.float32),
        "labels": np.zeros((b, max_det), np.int32),
    }
    if masks is not None and b:
        out["masks"] = np.zeros((b, max_det, *np.shape(masks[0])[-2:]), np.float32)
    for i, (boxes, scores, labels) in enumerate(per_image):
        scores = np.asarray(scores, np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")[:max_det]
        n = len(order)
        out["num_dets"][i, 0] = n
        out["boxes"][i, :n] = np.asarray(boxes, np.float32).reshape(-1, 4)[order]
        out["scores"][i, :n] = scores[order]
        out["labels"][i, :n] = np.asarray(labels).reshape(-1)[order]
        if "masks" in out:
            out["masks"][i, :n] = np.asarray(masks[i], np.float32).reshape(-1, *out["masks"].shape[2:])[order]
    return out
