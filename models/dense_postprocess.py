"""Post-processing of dense one-stage detectors (RetinaNet, FCOS), as torchvision does it.

Per image and per pyramid level: keep (anchor, class) pairs whose score exceeds
``score_thresh``, keep the ``topk_candidates`` best of those, decode their boxes and
clip them to the image; then, over all levels, class-wise NMS
(``torchvision.ops.batched_nms``) and the ``detections_per_img`` best survivors.
The operations and their order are torchvision's (``RetinaNet.postprocess_detections``
and ``FCOS.postprocess_detections``), so detections match torchvision's exactly.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor
from torchvision.ops import boxes as box_ops


def split_levels(head_outputs: dict[str, Tensor], anchors: list[Tensor], features: list[Tensor]):
    """Split [B, sum_l H_l*W_l*A, ...] head outputs and per-image anchors by level.

    Returns ``(outputs, anchors)``: ``outputs[key][level]`` is [B, H_l*W_l*A, ...];
    ``anchors[image][level]`` is [H_l*W_l*A, 4].
    """
    locations = [f.shape[-2] * f.shape[-1] for f in features]
    anchors_per_location = next(iter(head_outputs.values())).shape[1] // sum(locations)
    sizes = [n * anchors_per_location for n in locations]
    outputs = {key: list(value.split(sizes, dim=1)) for key, value in head_outputs.items()}
    return outputs, [list(a.split(sizes)) for a in anchors]


def select_detections(
    *,
    scores: list[Tensor],
    box_regression: list[Tensor],
    anchors: list[Tensor],
    decode: Callable[[Tensor, Tensor], Tensor],
    image_size: tuple[int, int],
    score_thresh: float,
    topk_candidates: int,
    nms_thresh: float,
    detections_per_img: int,
) -> dict[str, Tensor]:
    """Detections of one image from its per-level predictions.

    Args:
        scores: per level, float [N_l, C] class probabilities of the N_l anchors.
        box_regression: per level, float [N_l, 4] box deltas.
        anchors: per level, float [N_l, 4] anchors, xyxy network-input pixels.
        decode: ``decode(deltas [K, 4], anchors [K, 4]) -> boxes [K, 4]`` xyxy.
        image_size: (H, W) the boxes are clipped to.

    Returns:
        ``dict(boxes=[D, 4] xyxy float, scores=[D] float, labels=[D] int64)``,
        ``D <= detections_per_img``, sorted by descending score.
    """
    image_boxes, image_scores, image_labels = [], [], []
    for scores_per_level, regression_per_level, anchors_per_level in zip(scores, box_regression, anchors):
        num_classes = scores_per_level.shape[-1]
        flat_scores = scores_per_level.flatten()
        keep = flat_scores > score_thresh
        candidate_scores = flat_scores[keep]
        candidate_idxs = torch.where(keep)[0]

        candidate_scores, order = candidate_scores.topk(min(topk_candidates, candidate_idxs.numel()))
        candidate_idxs = candidate_idxs[order]
        anchor_idxs = torch.div(candidate_idxs, num_classes, rounding_mode="floor")
        labels = candidate_idxs % num_classes

        boxes = decode(regression_per_level[anchor_idxs], anchors_per_level[anchor_idxs])
        image_boxes.append(box_ops.clip_boxes_to_image(boxes, image_size))
        image_scores.append(candidate_scores)
        image_labels.append(labels)

    boxes, scores_, labels = torch.cat(image_boxes), torch.cat(image_scores), torch.cat(image_labels)
    keep = box_ops.batched_nms(boxes, scores_, labels, nms_thresh)[:detections_per_img]
    return {"boxes": boxes[keep], "scores": scores_[keep], "labels": labels[keep]}
