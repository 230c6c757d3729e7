"""DeployModule of Mask R-CNN (FPN): Faster R-CNN's static-shape path plus the masks.

After the box head's class-wise NMS (``FasterRCNNDeploy``), the K kept boxes of every
image go through ``torch.ops.sdk.multilevel_roi_align`` at the mask head's RoIAlign
size (torchvision's ``mask_roi_pool``, the same FPN level assignment), the mask head
and predictor, and the sigmoid of each detection's own class channel: torchvision's
``RoIHeads`` mask branch and ``maskrcnn_inference``, on all B * K rows at once.
Padding rows (past ``num_dets``) get zero masks.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import torch
from torch import Tensor, nn

from sdk.errors import ConfigError
from sdk.models.deploy.common import normalized_input, valid_rows
from sdk.models.deploy.faster_rcnn import FasterRCNNDeploy
from sdk.preprocess import Preprocess


class InstanceOutputs(NamedTuple):
    """Contract 2 with masks: ``num_dets`` int32 [B, 1], ``boxes`` float32 [B, K, 4] xyxy
    network-input pixels, ``scores`` float32 [B, K], ``labels`` int32 [B, K] and
    ``masks`` float32 [B, K, M, M], the probabilities of the detection's class on an
    M x M grid spanning its box (``sdk.masks.paste_masks`` puts them into an image)."""

    num_dets: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor
    masks: Tensor


class MaskRCNNDeploy(FasterRCNNDeploy):
    """``images [B, 3, H, W]`` -> ``InstanceOutputs`` (contract 2 plus ``masks``).

    Args: as ``FasterRCNNDeploy``; ``model`` is an eager ``sdk.models.MaskRCNN``.
    """

    output_names = ("num_dets", "boxes", "scores", "labels", "masks")

    def __init__(self, model: nn.Module, *, preprocess: Preprocess, postprocess: Mapping[str, float | int]) -> None:
        super().__init__(model, preprocess=preprocess, postprocess=postprocess)
        roi_heads = model.roi_heads
        self.mask_head, self.mask_predictor = roi_heads.mask_head, roi_heads.mask_predictor
        pool = roi_heads.mask_roi_pool
        if sorted(pool.featmap_names) != sorted(roi_heads.box_roi_pool.featmap_names):
            raise ConfigError("MaskRCNNDeploy needs the mask and box RoIAlign to read the same feature maps")
        self.mask_output_size = [int(v) for v in pool.output_size]
        self.mask_sampling_ratio = int(pool.sampling_ratio)
        self.mask_size = mask_output_size(model)

    def forward(self, images: Tensor, image_sizes: Tensor | None = None) -> InstanceOutputs:
        features = self.backbone(normalized_input(self.normalize, images, image_sizes))
        proposals, valid = self.propose(images, list(features.values()), image_sizes)
        levels = [features[name] for name in self.featmap_names]
        detections = self.detect(images, levels, proposals, valid, image_sizes)
        return InstanceOutputs(*detections, self.masks(levels, detections.boxes, detections.labels, detections.num_dets))

    def masks(self, features: list[Tensor], boxes: Tensor, labels: Tensor, num_dets: Tensor) -> Tensor:
        """Mask branch: boxes [B, K, 4] and their labels [B, K] -> probabilities [B, K, M, M]."""
        pooled = torch.ops.sdk.multilevel_roi_align(
            boxes, features, self.mask_output_size, self.mask_sampling_ratio, False,
            self.spatial_scales, self.canonical_scale, self.canonical_level,
        )  # [B, K, C, oh, ow]
        batch, k = boxes.shape[:2]
        logits = self.mask_predictor(self.mask_head(pooled.flatten(0, 1)))  # [B * K, classes, M, M]
        size = logits.shape[-1]
        index = labels.reshape(-1, 1, 1, 1).long().expand(-1, 1, size, size)
        probs = torch.gather(logits, 1, index).sigmoid().reshape(batch, k, size, size)
        keep = valid_rows(num_dets, k)[:, :, None, None]
        return torch.where(keep, probs, torch.zeros_like(probs))


def mask_output_size(model: nn.Module) -> int | None:
    """M of the ``masks`` output of ``model``'s DeployModule (2 x the mask RoIAlign size:
    the predictor's transposed conv doubles it), or None for a model without masks."""
    roi_heads = getattr(model, "roi_heads", None)
    pool = getattr(roi_heads, "mask_roi_pool", None)
    if pool is None:
        return None
    return 2 * int(pool.output_size[0])
