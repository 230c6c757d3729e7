"""DeployModule of SSD / SSDlite.

torchvision's ``SSD.postprocess_detections`` with static shapes: softmax over the
classes, every default box decoded and clipped, then per foreground class the
``topk_candidates`` best boxes scoring above ``score_thr`` (kept as a mask over the
[B, N, C-1] scores instead of by indexing), class-wise NMS
(``torch.ops.sdk.batched_nms``) and the ``max_det`` best. The background column is
dropped before NMS and the op's column index shifted back by one.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.ops import boxes as box_ops

from sdk.errors import ConfigError
from sdk.models.deploy.common import (
    DetectionOutputs,
    InputNormalizer,
    check_postprocess,
    input_size,
    shift_labels,
    static_anchors,
)
from sdk.preprocess import Preprocess


class SSDDeploy(nn.Module):
    """``images [B, 3, H, W]`` -> ``DetectionOutputs`` (contract 2, K = ``max_det``).

    Args:
        model: the eager ``sdk.models.SSD`` (``backbone``, ``head``, ``anchor_generator``,
            ``box_coder``, ``topk_candidates``); its modules are shared, not copied.
        preprocess: gives the static input size (H, W) and the normalization.
        postprocess: ``{"score_thr", "iou_thr", "max_det"}`` baked into the graph.
    """

    def __init__(self, model: nn.Module, *, preprocess: Preprocess, postprocess: Mapping[str, float | int]) -> None:
        super().__init__()
        self.image_size = input_size(preprocess)
        if self.image_size is None:  # SSD's default boxes are laid out for one size
            raise ConfigError("SSD exports one input size: use a letterbox Preprocess (SSDlite is trained at a "
                              "fixed size); dynamic shapes are for keep_ratio models")
        self.score_thr, self.iou_thr, self.max_det = check_postprocess(postprocess)
        self.normalize = InputNormalizer(preprocess)
        self.backbone = model.backbone
        self.head = model.head
        self.box_coder = model.box_coder
        self.topk_candidates = int(model.topk_candidates)
        anchors, _ = static_anchors(model.backbone, model.anchor_generator, self.image_size)
        self.register_buffer("anchors", anchors, persistent=False)

    def forward(self, images: Tensor) -> DetectionOutputs:
        features = list(self.backbone(self.normalize(images)).values())
        head_outputs = self.head(features)
        regression = head_outputs["bbox_regression"]  # [B, N, 4]
        anchors = self.anchors.unsqueeze(0).expand(regression.shape[0], -1, -1)
        boxes = self.box_coder.decode_single(regression.reshape(-1, 4), anchors.reshape(-1, 4))
        boxes = box_ops.clip_boxes_to_image(boxes.reshape(regression.shape), self.image_size)

        scores = F.softmax(head_outputs["cls_logits"], dim=-1)[..., 1:].transpose(1, 2)  # [B, C-1, N]
        scores = torch.where(scores > self.score_thr, scores, torch.zeros_like(scores))
        top_scores, top_idx = scores.topk(min(self.topk_candidates, scores.shape[-1]), dim=2)
        selected = torch.zeros_like(scores).scatter(2, top_idx, top_scores).transpose(1, 2)  # [B, N, C-1]
        outputs = DetectionOutputs(
            *torch.ops.sdk.batched_nms(boxes, selected, self.score_thr, self.iou_thr, self.max_det, -1, False)
        )
        return shift_labels(outputs, 1)
