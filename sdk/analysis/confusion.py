"""Confusion matrix with a background row and column (MMDetection's ``confusion_matrix.py``).

Rows are ground-truth classes, columns predicted classes, both in the dataset's
category order, plus ``background`` last. Per image, with the detections scoring at
least ``score_thr`` (optionally NMS'd per class at ``nms_iou_thr`` first):

- every detection is compared with every ground-truth box; each ground truth it
  overlaps with IoU >= ``iou_thr`` adds one to ``[gt class, predicted class]`` (a
  detection overlapping two ground truths counts twice, as in MMDetection);
- a detection overlapping none adds one to ``[background, predicted class]`` (a
  false positive on background);
- a ground truth that no detection of its own class overlaps adds one to
  ``[gt class, background]`` (a miss).

Crowd annotations are not ground truth here. Detections of classes the dataset does
not have are left out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import numpy as np

from sdk.analysis.common import class_names, ground_truth, pyplot, save_figure, to_dataset_labels, write_csv
from sdk.detections import Detections

if TYPE_CHECKING:  # pragma: no cover
    from sdk.data.coco import CocoDetection

BACKGROUND = "background"


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of xyxy boxes a [N, 4] and b [M, 4] -> [N, M]."""
    a, b = np.asarray(a, np.float64).reshape(-1, 4), np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def image_confusion(gt: Detections, dets: Detections, num_classes: int, *, iou_thr: float = 0.5,
                    score_thr: float = 0.3, nms_iou_thr: float | None = None) -> np.ndarray:
    """The [C + 1, C + 1] counts of one image (see the module docstring); ``gt`` and
    ``dets`` are labelled 0..C-1 in the same label space."""
    matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    dets = dets.filter(score_thr)
    if nms_iou_thr is not None and len(dets):
        dets = _class_nms(dets, nms_iou_thr)
    gt_labels = gt.labels
    true_positives = np.zeros(len(gt_labels), np.int64)
    ious = box_iou(dets.boxes, gt.boxes)
    for i, det_label in enumerate(dets.labels):
        hits = np.nonzero(ious[i] >= iou_thr)[0] if len(gt_labels) else np.zeros(0, int)
        for j in hits:
            matrix[gt_labels[j], det_label] += 1
            if gt_labels[j] == det_label:
                true_positives[j] += 1
        if hits.size == 0:
            matrix[num_classes, det_label] += 1
    for j, label in enumerate(gt_labels):
        if true_positives[j] == 0:
            matrix[label, num_classes] += 1
    return matrix


def _class_nms(dets: Detections, iou_thr: float) -> Detections:
    import torch
    from torchvision.ops import batched_nms

    keep = batched_nms(torch.from_numpy(dets.boxes), torch.from_numpy(dets.scores), torch.from_numpy(dets.labels),
                       iou_thr).numpy()
    return Detections(dets.boxes[keep], dets.scores[keep], dets.labels[keep], dets.class_names)


def confusion_matrix(dataset: "CocoDetection", detections: Mapping[int, Detections], *, iou_thr: float = 0.5,
                     score_thr: float = 0.3, nms_iou_thr: float | None = None) -> np.ndarray:
    """Counts summed over the dataset's images (images without detections: all misses)."""
    names = class_names(dataset)
    matrix = np.zeros((len(names) + 1, len(names) + 1), np.int64)
    for index, image_id in enumerate(dataset.image_ids):
        dets = detections.get(image_id) or Detections.empty(names)
        matrix += image_confusion(ground_truth(dataset, index), to_dataset_labels(dets, names), len(names),
                                  iou_thr=iou_thr, score_thr=score_thr, nms_iou_thr=nms_iou_thr)
    return matrix


def write_confusion(matrix: np.ndarray, names: Sequence[str], out_dir: str | Path, *, title: str = "") -> dict[str, Path]:
    """``confusion_matrix.csv`` (counts, first column the ground-truth class) and
    ``confusion_matrix.png`` (each row normalized to percent, as MMDetection plots it)."""
    out_dir = Path(out_dir)
    labels = [*names, BACKGROUND]
    csv_path = write_csv(out_dir / "confusion_matrix.csv", ["gt \\ pred", *labels],
                         [[labels[i], *map(int, row)] for i, row in enumerate(matrix)])
    plt = pyplot()
    sums = matrix.sum(axis=1, keepdims=True)
    percent = np.where(sums > 0, 100.0 * matrix / np.where(sums > 0, sums, 1), 0.0)
    n = len(labels)
    size = max(5.0, 0.55 * n + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(percent, cmap="Blues", vmin=0, vmax=100)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="% of the ground-truth row")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("ground truth")
    ax.set_title(title or "confusion matrix (row-normalized %; counts in the CSV)")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(j, i, f"{percent[i, j]:.0f}\n({matrix[i, j]})", ha="center", va="center", fontsize=7,
                            color="white" if percent[i, j] > 50 else "black")
    return {"csv": csv_path, "png": save_figure(fig, out_dir / "confusion_matrix.png")}
