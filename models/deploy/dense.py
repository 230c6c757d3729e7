"""DeployModules of the dense one-stage families: RetinaNet, FCOS and RTMDet.

Both post-process as torchvision does (``sdk.models.dense_postprocess``): per level,
the (anchor, class) pairs scoring above ``score_thr``, at most ``topk_candidates`` of
them, decoded and clipped; then class-wise NMS over all levels and the ``max_det``
best. Here with static shapes: the threshold masks scores to 0 instead of indexing,
``topk`` takes a fixed ``min(topk_candidates, level size)`` per level (a dynamic-shape
module pads each level with zero scores to exactly ``topk_candidates``), and
``torch.ops.sdk.batched_nms`` does the NMS (its own ``score > score_thr`` drops the
masked pairs). Only the class scores and the box decoding differ between families.
"""

from __future__ import annotations

from typing import Mapping

import torch
from torch import Tensor, nn

from sdk.models.deploy.common import (
    DetectionOutputs,
    InputNormalizer,
    check_postprocess,
    clip_to_input,
    gather_rows,
    graph_anchors,
    input_size,
    normalized_input,
    pad_candidates,
    static_anchors,
)
from sdk.preprocess import Preprocess


class DenseDeployModule(nn.Module):
    """``images [B, 3, H, W]`` (uint8, or normalized float32 when the preprocess does
    not normalize in the graph) -> ``DetectionOutputs`` (contract 2, K = ``max_det``).
    ``image_sizes`` int64 [B, 2] (a dynamic-shape graph's second input): each image's
    content (h, w) at the top left; the padding is zeroed after normalization and boxes
    clip to the content, as torchvision batches images.

    Args:
        model: the eager detector (``backbone``, ``head``, ``anchor_generator``,
            ``box_coder``, ``topk_candidates``); its modules are shared, not copied.
        preprocess: gives the normalization and the static input size (H, W) or, for a
            keep_ratio record without a canvas, none: the module then takes any H x W
            (anchors laid out in the graph, boxes clipped to the input).
        postprocess: ``{"score_thr", "iou_thr", "max_det"}`` baked into the graph.
    """

    def __init__(self, model: nn.Module, *, preprocess: Preprocess, postprocess: Mapping[str, float | int]) -> None:
        super().__init__()
        self.image_size = input_size(preprocess)
        self.score_thr, self.iou_thr, self.max_det = check_postprocess(postprocess)
        self.normalize = InputNormalizer(preprocess)
        self.backbone = model.backbone
        self.head = model.head
        self.box_coder = model.box_coder
        self.topk_candidates = int(model.topk_candidates)
        self.anchor_generator = model.anchor_generator
        self.anchors_per_location = list(model.anchor_generator.num_anchors_per_location())
        if self.image_size is not None:  # one input size: the anchors are a constant
            anchors, _ = static_anchors(model.backbone, model.anchor_generator, self.image_size)
            self.register_buffer("anchors", anchors, persistent=False)

    def class_scores(self, head_outputs: dict[str, Tensor]) -> Tensor:
        """float [B, N, C] class probabilities of the N anchors."""
        raise NotImplementedError

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        """``deltas`` [M, 4], ``anchors`` [M, 4] xyxy -> boxes [M, 4] xyxy."""
        raise NotImplementedError

    def forward(self, images: Tensor, image_sizes: Tensor | None = None) -> DetectionOutputs:
        features = list(self.backbone(normalized_input(self.normalize, images, image_sizes)).values())
        head_outputs = self.head(features)
        scores = self.class_scores(head_outputs)
        regression = head_outputs["bbox_regression"]
        num_classes = scores.shape[-1]
        anchors = self.anchors if self.image_size is not None else graph_anchors(self.anchor_generator, images, features)
        level_sizes = [f.shape[-2] * f.shape[-1] * a for f, a in zip(features, self.anchors_per_location)]

        level_scores, level_boxes, level_labels = [], [], []
        start = 0
        for size in level_sizes:
            flat = scores[:, start : start + size].flatten(1)  # [B, size * C], index anchor * C + class
            flat = torch.where(flat > self.score_thr, flat, torch.zeros_like(flat))
            flat, k = pad_candidates(flat, self.topk_candidates, static=self.image_size is not None)
            top_scores, top_idx = flat.topk(k, dim=1)
            anchor_idx = torch.div(top_idx, num_classes, rounding_mode="floor")
            anchor_idx = torch.where(anchor_idx < size, anchor_idx, 0) + start  # padding rows: any real anchor
            deltas = gather_rows(regression, anchor_idx)
            boxes = self.decode(deltas.reshape(-1, 4), anchors[anchor_idx].reshape(-1, 4))
            level_boxes.append(boxes.reshape(deltas.shape))
            level_scores.append(top_scores)
            level_labels.append(top_idx % num_classes)
            start = start + size

        boxes = clip_to_input(torch.cat(level_boxes, dim=1), self.image_size, images, image_sizes)
        top_scores, labels = torch.cat(level_scores, dim=1), torch.cat(level_labels, dim=1)
        # one row per candidate, its score in its class column: NMS stays class-wise
        candidate_scores = top_scores.new_zeros((*top_scores.shape, num_classes))
        candidate_scores = candidate_scores.scatter(2, labels.unsqueeze(-1), top_scores.unsqueeze(-1))
        return DetectionOutputs(
            *torch.ops.sdk.batched_nms(boxes, candidate_scores, self.score_thr, self.iou_thr, self.max_det, -1, False)
        )


class RetinaNetDeploy(DenseDeployModule):
    """RetinaNet: sigmoid class scores, ``BoxCoder.decode_single`` against the anchors."""

    def class_scores(self, head_outputs: dict[str, Tensor]) -> Tensor:
        return torch.sigmoid(head_outputs["cls_logits"])

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        return self.box_coder.decode_single(deltas, anchors)


class FCOSDeploy(DenseDeployModule):
    """FCOS: ``sqrt(sigmoid(cls) * sigmoid(centerness))``, (l, t, r, b) distances
    decoded by ``BoxLinearCoder`` against the per-location stride squares."""

    def class_scores(self, head_outputs: dict[str, Tensor]) -> Tensor:
        return torch.sqrt(torch.sigmoid(head_outputs["cls_logits"]) * torch.sigmoid(head_outputs["bbox_ctrness"]))

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        return self.box_coder.decode(deltas, anchors)


class RTMDetDeploy(DenseDeployModule):
    """RTMDet: sigmoid class scores, (l, t, r, b) distances in strides (the head's
    ``exp`` already applied) decoded by ``BoxLinearCoder`` against the stride squares."""

    def class_scores(self, head_outputs: dict[str, Tensor]) -> Tensor:
        return torch.sigmoid(head_outputs["cls_logits"])

    def decode(self, deltas: Tensor, anchors: Tensor) -> Tensor:
        return self.box_coder.decode(deltas, anchors)
