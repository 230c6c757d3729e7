"""Turn the fixed-shape detection contract into ``Detections`` (docs/architecture.md, contract 2).

Every backend and flavor ends in::

    num_dets int32   [B, 1]     valid rows per image
    boxes    float32 [B, K, 4]  x1, y1, x2, y2 in network-input pixels
    scores   float32 [B, K]     descending per image
    labels   int32   [B, K]     0-based index into the class list

Rows past ``num_dets`` are padding. This module is the single place where those
rows become per-image ``Detections`` in original-image pixels.
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
