"""Turn the fixed-shape detection contract into ``Detections`` (docs/architecture.md, contract 2).

Every backend and flavor ends in::

    num_dets int32   [B, 1]     valid rows per image
    boxes    float32 [B, K, 4]  x1, y1, x2, y2 in network-input pixels
    scores   float32 [B, K]     descending per image
    labels   int32   [B, K]     0-based index into the class list

Rows past ``num_dets`` are padding. This module is the single place where those
rows become per-image ``Detections`` in original-image pixels (``decode_outputs``), and
where per-image detections are packed into them (``pack_detections``: the eager torch
backend, the server's responses).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from sdk.detections import Detections
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
    are ignored.
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
        b = record.boxes_to_original(np.asarray(boxes[i, :n], np.float32)[keep])
        result.append(Detections(b, s[keep], np.asarray(labels[i, :n], np.int64)[keep], class_names))
    return result


def pack_detections(per_image: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], *, max_det: int) -> dict[str, np.ndarray]:
    """Per-image ``(boxes (N, 4) xyxy, scores (N,), labels (N,))`` -> contract 2.

    Returns ``num_dets`` int32 [B, 1], ``boxes`` float32 [B, K, 4], ``scores`` float32
    [B, K] descending, ``labels`` int32 [B, K] with K = ``max_det``, zero past
    ``num_dets``. Rows are ordered by score (a stable sort: equal scores keep their
    order); an image with more than K detections keeps its K best.
    """
    b = len(per_image)
    out = {
        "num_dets": np.zeros((b, 1), np.int32),
        "boxes": np.zeros((b, max_det, 4), np.float32),
        "scores": np.zeros((b, max_det), np.float32),
        "labels": np.zeros((b, max_det), np.int32),
    }
    for i, (boxes, scores, labels) in enumerate(per_image):
        scores = np.asarray(scores, np.float32).reshape(-1)
        order = np.argsort(-scores, kind="stable")[:max_det]
        n = len(order)
        out["num_dets"][i, 0] = n
        out["boxes"][i, :n] = np.asarray(boxes, np.float32).reshape(-1, 4)[order]
        out["scores"][i, :n] = scores[order]
        out["labels"][i, :n] = np.asarray(labels).reshape(-1)[order]
    return out
