"""Reference implementation of ``sdk::batched_nms`` on torchvision ops (CPU and CUDA).

This function *defines* the op's semantics; every other implementation (ONNX
lowerings, Triton kernel, ONNX Runtime custom op) is tested against it.
"""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor


def check_nms_inputs(boxes: Tensor, scores: Tensor, max_det: int) -> None:
    """Raise ``ValueError`` unless ``boxes``/``scores`` have the shapes the op accepts."""
    if scores.dim() != 3:
        raise ValueError(f"scores must be [B, N, C], got shape {tuple(scores.shape)}")
    batch, num, num_classes = scores.shape
    if boxes.dim() == 3:
        expected = (batch, num, 4)
    elif boxes.dim() == 4:
        expected = (batch, num, num_classes, 4)
    else:
        expected = None
    if expected is None or tuple(boxes.shape) != expected:
        raise ValueError(
            f"boxes must be [B, N, 4] or [B, N, C, 4] matching scores [B, N, C] = "
            f"{tuple(scores.shape)}, got shape {tuple(boxes.shape)}"
        )
    if num_classes < 1:
        raise ValueError("scores must have at least one class (C >= 1)")
    if max_det < 1:
        raise ValueError(f"max_det must be >= 1, got {max_det}")


def _per_class_nms(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    """``torchvision.ops.batched_nms`` computed class by class with ``nms``.

    torchvision's ``batched_nms`` switches to its "coordinate trick" (offsetting boxes by
    class) for small inputs; the float rounding of the offset can flip IoUs that sit
    within ~1e-4 of the threshold. The class loop (torchvision's own ``_batched_nms_vanilla``)
    computes every IoU on the original coordinates, so the result is exact.
    Returns a keep mask [M] bool.
    """
    keep = torch.zeros_like(scores, dtype=torch.bool)
    for label in torch.unique(labels):
        idx = torch.where(labels == label)[0]
        keep[idx[torchvision.ops.nms(boxes[idx], scores[idx], iou_threshold)]] = True
    return keep


def batched_nms_reference(
    boxes: Tensor,
    scores: Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_det: int,
    pre_nms_top_k: int = -1,
    class_agnostic: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Batched multi-class NMS with fixed-size, zero-padded outputs.

    Args:
        boxes (Tensor[B, N, 4] or Tensor[B, N, C, 4]): ``(x1, y1, x2, y2)`` boxes with
            ``x1 <= x2`` and ``y1 <= y2``, shared by all classes or one per class.
        scores (Tensor[B, N, C]): per class scores (probabilities, after sigmoid/softmax).
        score_threshold (float): candidates ``(n, c)`` need ``score > score_threshold``.
        iou_threshold (float): a candidate is suppressed by a higher ranked one of the
            same class (any class if ``class_agnostic``) when their IoU is
            ``> iou_threshold``.
        max_det (int): K, the number of output rows per image.
        pre_nms_top_k (int): keep only the ``pre_nms_top_k`` best candidates per image
            before NMS; ``<= 0`` keeps all.
        class_agnostic (bool): suppress across classes (plain ``nms``).

    Returns:
        num_dets (Tensor[B, 1] int32): valid rows per image, ``<= K``.
        boxes (Tensor[B, K, 4] float32): kept boxes, best first.
        scores (Tensor[B, K] float32): descending per image.
        labels (Tensor[B, K] int32): class index ``c`` in ``[0, C)``.
        Rows past ``num_dets`` are zeros.

    Ranking: candidates are ordered by score, ties broken by the lower flat index
    ``n * C + c`` (a stable sort of the ``[N, C]`` scores flattened row-major).
    """
    check_nms_inputs(boxes, scores, max_det)
    batch, _, num_classes = scores.shape
    device = scores.device
    out_num = torch.zeros((batch, 1), dtype=torch.int32, device=device)
    out_boxes = torch.zeros((batch, max_det, 4), dtype=torch.float32, device=device)
    out_scores = torch.zeros((batch, max_det), dtype=torch.float32, device=device)
    out_labels = torch.zeros((batch, max_det), dtype=torch.int32, device=device)
    for b in range(batch):
        flat_scores = scores[b].reshape(-1).float()
        candidates = torch.nonzero(flat_scores > score_threshold).squeeze(1)
        order = torch.sort(flat_scores[candidates], descending=True, stable=True).indices
        if pre_nms_top_k > 0:
            order = order[:pre_nms_top_k]
        candidates = candidates[order]  # rank order: best first
        cand_scores = flat_scores[candidates]
        anchor, labels = candidates // num_classes, candidates % num_classes
        cand_boxes = (boxes[b, anchor, labels] if boxes.dim() == 4 else boxes[b, anchor]).float()
        if class_agnostic:
            keep = torch.zeros_like(cand_scores, dtype=torch.bool)
            keep[torchvision.ops.nms(cand_boxes, cand_scores, iou_threshold)] = True
        else:
            keep = _per_class_nms(cand_boxes, cand_scores, labels, iou_threshold)
        # candidates are in rank order, so the first kept rows are the best ones
        kept = torch.nonzero(keep).squeeze(1)[:max_det]
        count = kept.numel()
        out_num[b, 0] = count
        out_boxes[b, :count] = cand_boxes[kept]
        out_scores[b, :count] = cand_scores[kept]
        out_labels[b, :count] = labels[kept].to(torch.int32)
    return out_num, out_boxes, out_scores, out_labels


def nms_over_candidates_reference(
    boxes: Tensor, scores: Tensor, labels: Tensor, score_threshold: float, iou_threshold: float, max_det: int,
    class_agnostic: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """``sdk::BatchedNMS`` as the TensorRT-flavor node sees it: NMS over M ranked candidates.

    Args:
        boxes (Tensor[B, M, 4]), scores (Tensor[B, M]), labels (Tensor[B, M] int): the
            pre-NMS top-k in rank order (best first, as the graph's TopK gives them).
        Others as ``batched_nms_reference``.

    Defined through ``batched_nms_reference``: candidate ``m`` becomes anchor ``m`` scoring
    only in its class (``-inf`` elsewhere), so flat index order is candidate order.
    """
    batch, num = scores.shape
    num_classes = int(labels.max()) + 1 if labels.numel() else 1
    one_class = torch.full((batch, num, num_classes), float("-inf"), dtype=torch.float32, device=scores.device)
    one_class.scatter_(2, labels.long()[..., None], scores.float()[..., None])
    return batched_nms_reference(boxes.float(), one_class, score_threshold, iou_threshold, max_det, -1, class_agnostic)
