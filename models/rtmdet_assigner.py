"""RTMDet's dynamic soft label assigner and quality focal loss.

The assigner (RTMDet paper, section 3.3) matches predictions to ground-truth boxes by a
cost that uses the predictions themselves: a soft classification cost (BCE against the
IoU-valued soft label, scaled by the squared gap), an IoU cost ``-3 log IoU`` and a
soft centre prior ``10^(d - 3)`` (``d`` = centre distance in strides). Each box takes
its ``k`` cheapest candidates among the locations inside it, with ``k`` = the sum of
its 13 best IoUs (at least 1), SimOTA's dynamic k; a location claimed by several boxes
keeps the cheapest.

Quality focal loss (Li et al., "Generalized Focal Loss", 2020): sigmoid BCE against a
soft target (the IoU for the positive class, 0 elsewhere) scaled by
``|target - sigmoid(logit)|^beta``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F
from torchvision.ops import box_iou

_EPS = 1e-7


@dataclass(frozen=True)
class Assignment:
    """One image's matching of N locations to M boxes.

    Attributes:
        matched: int64 [N]: matched box index, or -1 (background).
        ious: float [N]: IoU of the location's predicted box with its matched box
            (0 for background): the positives' soft classification target.
    """

    matched: Tensor
    ious: Tensor


@torch.no_grad()
def dynamic_soft_label_assign(
    *,
    points: Tensor,
    strides: Tensor,
    pred_logits: Tensor,
    pred_boxes: Tensor,
    gt_boxes: Tensor,
    gt_labels: Tensor,
    topk: int = 13,
    iou_weight: float = 3.0,
    soft_center_radius: float = 3.0,
) -> Assignment:
    """Assign N locations to M ground-truth boxes (``DynamicSoftLabelAssigner``).

    Args:
        points: float [N, 2] location centres (x, y), input pixels.
        strides: float [N] the stride of each location's level.
        pred_logits: float [N, C] class logits.
        pred_boxes: float [N, 4] predicted boxes, xyxy input pixels.
        gt_boxes: float [M, 4] xyxy input pixels.
        gt_labels: int64 [M] class column in ``pred_logits``.
        topk: candidates whose IoUs sum to a box's dynamic k.
        iou_weight: weight of ``-log IoU`` in the cost.
        soft_center_radius: the centre prior is ``10^(distance / stride - radius)``.
    """
    num_points = points.shape[0]
    matched = torch.full((num_points,), -1, dtype=torch.int64, device=points.device)
    ious_out = points.new_zeros(num_points)
    if gt_boxes.numel() == 0:
        return Assignment(matched, ious_out)

    x, y = points[:, 0:1], points[:, 1:2]
    inside = torch.stack([x - gt_boxes[:, 0], y - gt_boxes[:, 1], gt_boxes[:, 2] - x, gt_boxes[:, 3] - y], dim=-1)
    valid = inside.min(dim=-1).values.gt(0).any(dim=1)  # [N]: inside at least one box
    if not valid.any():
        return Assignment(matched, ious_out)
    valid_idx = valid.nonzero().squeeze(1)

    gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
    distance = (points[valid_idx, None, :] - gt_centers[None]).pow(2).sum(-1).sqrt() / strides[valid_idx, None]
    center_prior = torch.pow(10.0, distance - soft_center_radius)  # [n, M]

    pairwise_ious = box_iou(pred_boxes[valid_idx], gt_boxes)  # [n, M]
    iou_cost = -torch.log(pairwise_ious + _EPS) * iou_weight

    logits = pred_logits[valid_idx].float()[:, None, :].expand(-1, gt_boxes.shape[0], -1)  # [n, M, C]
    soft_label = F.one_hot(gt_labels, logits.shape[-1]).float()[None] * pairwise_ious[..., None]
    scale = (soft_label - logits.sigmoid()).abs().pow(2.0)
    cls_cost = (F.binary_cross_entropy_with_logits(logits, soft_label, reduction="none") * scale).sum(-1)

    cost = cls_cost + iou_cost + center_prior
    matching = _dynamic_k_matching(cost, pairwise_ious, topk)  # bool [n, M]
    fg = matching.any(dim=1)
    gt_index = matching.float().argmax(dim=1)
    matched[valid_idx[fg]] = gt_index[fg]
    ious_out[valid_idx[fg]] = pairwise_ious[fg, gt_index[fg]].to(ious_out.dtype)
    return Assignment(matched, ious_out)


def _dynamic_k_matching(cost: Tensor, ious: Tensor, topk: int) -> Tensor:
    """bool [n, M]: each box's ``k`` cheapest candidates, ``k = max(1, int(sum of its
    top-``topk`` IoUs))``; a candidate claimed by several boxes keeps its cheapest."""
    candidates = min(topk, ious.shape[0])
    dynamic_ks = ious.topk(candidates, dim=0).values.sum(0).int().clamp(min=1)
    matching = torch.zeros_like(cost, dtype=torch.bool)
    for gt, k in enumerate(dynamic_ks.tolist()):
        matching[cost[:, gt].topk(k, largest=False).indices, gt] = True
    shared = matching.sum(dim=1) > 1
    if shared.any():
        cheapest = cost[shared].argmin(dim=1)
        matching[shared] = False
        matching[shared.nonzero().squeeze(1), cheapest] = True
    return matching


def quality_focal_loss(logits: Tensor, labels: Tensor, quality: Tensor, *, beta: float = 2.0) -> Tensor:
    """Sigmoid quality focal loss, summed over classes.

    Args:
        logits: float [N, C] class logits.
        labels: int64 [N] positive class column, or -1 (background: every target 0).
        quality: float [N] soft target of the positive column (an IoU in [0, 1]).

    Returns:
        float [N] loss per location (sum over C).
    """
    prob = logits.sigmoid()
    loss = F.binary_cross_entropy_with_logits(logits, torch.zeros_like(logits), reduction="none") * prob.pow(beta)
    pos = (labels >= 0).nonzero().squeeze(1)
    if pos.numel():
        pos_labels = labels[pos]
        target = quality[pos].to(logits.dtype)
        pos_logits = logits[pos, pos_labels]
        pos_loss = F.binary_cross_entropy_with_logits(pos_logits, target, reduction="none")
        pos_loss = pos_loss * (target - prob[pos, pos_labels]).abs().pow(beta)
        loss = loss.index_put((pos, pos_labels), pos_loss)
    return loss.sum(dim=1)
