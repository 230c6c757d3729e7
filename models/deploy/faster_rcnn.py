"""DeployModule of Faster R-CNN (FPN).

torchvision's inference path with static shapes and the two custom ops:

* RPN (``RegionProposalNetwork.filter_proposals``): per level the
  ``rpn_pre_nms_top_n_test`` best anchors by objectness, decoded and clipped; small
  boxes and those under ``rpn_score_thresh`` masked to score 0; NMS per level (the
  level is the "class" of ``torch.ops.sdk.batched_nms``) keeping exactly
  ``rpn_post_nms_top_n_test`` rows, the padding rows marked invalid.
* Box head (``RoIHeads.postprocess_detections``): ``torch.ops.sdk.multilevel_roi_align``
  (torchvision's ``MultiScaleRoIAlign`` with the scales fixed for the static input
  size), the box head and predictor on all B * P proposals, class-specific boxes
  decoded and clipped, background dropped, small boxes and invalid proposals masked,
  class-wise NMS on the [B, P, C-1, 4] per-class boxes, labels shifted back by one.
"""

from __future__ import annotations

import math
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection.rpn import concat_box_prediction_layers

from sdk.models.deploy.common import (
    DetectionOutputs,
    InputNormalizer,
    check_postprocess,
    clip_to_input,
    gather_rows,
    graph_anchors,
    input_size,
    layout_size,
    normalized_input,
    pad_candidates,
    shift_labels,
    static_anchors,
    valid_rows,
)
from sdk.preprocess import Preprocess

_BOX_MIN_SIZE = 1e-2  # torchvision RoIHeads.postprocess_detections' remove_small_boxes
_PADDING_LOGIT = -1e4  # objectness of a dynamic-shape level's padding candidates: sigmoid 0


class FasterRCNNDeploy(nn.Module):
    """``images [B, 3, H, W]`` -> ``DetectionOutputs`` (contract 2, K = ``max_det``);
    ``image_sizes`` int64 [B, 2] as ``DenseDeployModule``'s (RPN proposals clip to it too).

    Args:
        model: the eager ``sdk.models.FasterRCNN`` (``backbone``, ``rpn``, ``roi_heads``);
            its modules are shared, not copied. The RPN's test-time settings are used.
        preprocess: gives the normalization and the static input size (H, W) or, for a
            keep_ratio record without a canvas, none: the module then takes any H x W
            (anchors laid out in the graph, every RPN level padded to
            ``rpn_pre_nms_top_n`` candidates, boxes clipped to the input).
        postprocess: ``{"score_thr", "iou_thr", "max_det"}`` of the box head, baked in.
    """

    def __init__(self, model: nn.Module, *, preprocess: Preprocess, postprocess: Mapping[str, float | int]) -> None:
        super().__init__()
        self.image_size = input_size(preprocess)
        self.score_thr, self.iou_thr, self.max_det = check_postprocess(postprocess)
        self.normalize = InputNormalizer(preprocess)
        self.backbone = model.backbone
        rpn, roi_heads = model.rpn, model.roi_heads
        self.rpn_head, self.rpn_box_coder = rpn.head, rpn.box_coder
        self.rpn_pre_nms_top_n = int(rpn._pre_nms_top_n["testing"])
        self.rpn_post_nms_top_n = int(rpn._post_nms_top_n["testing"])
        self.rpn_nms_thresh, self.rpn_score_thresh = float(rpn.nms_thresh), float(rpn.score_thresh)
        self.rpn_min_size = float(rpn.min_size)
        self.box_head, self.box_predictor, self.box_coder = roi_heads.box_head, roi_heads.box_predictor, roi_heads.box_coder

        self.anchor_generator = rpn.anchor_generator
        self.anchors_per_location = list(rpn.anchor_generator.num_anchors_per_location())
        layout = layout_size(preprocess)
        anchors, feature_sizes = static_anchors(model.backbone, rpn.anchor_generator, layout)
        if self.image_size is not None:  # one input size: the anchors are a constant
            self.register_buffer("anchors", anchors, persistent=False)
            top_ks = [min(self.rpn_pre_nms_top_n, h * w * a)
                      for (h, w), a in zip(feature_sizes.values(), self.anchors_per_location)]
        else:  # every level padded to exactly pre_nms_top_n candidates (pad_candidates)
            top_ks = [self.rpn_pre_nms_top_n] * len(feature_sizes)
        # one-hot level of each pre-NMS candidate: NMS runs per level, as torchvision's
        levels = torch.cat([torch.full((k,), i) for i, k in enumerate(top_ks)])
        self.register_buffer("candidate_levels", F.one_hot(levels, len(top_ks)).float(), persistent=False)

        pool = roi_heads.box_roi_pool
        # as MultiScaleRoIAlign: the backbone's maps named in featmap_names, in backbone order
        self.featmap_names = [name for name in feature_sizes if name in pool.featmap_names]
        self.roi_output_size = [int(v) for v in pool.output_size]
        self.roi_sampling_ratio = int(pool.sampling_ratio)
        self.canonical_scale, self.canonical_level = int(pool.canonical_scale), int(pool.canonical_level)
        # torchvision's MultiScaleRoIAlign infers 2 ** round(log2(feature / image)) from the heights
        # (the same for every input padded to the divisor)
        scales = [2.0 ** round(math.log2(feature_sizes[name][0] / layout[0])) for name in self.featmap_names]
        # LevelMapper sends RoIs to maps 0 .. log2(scales[0] / scales[-1]) only: with two maps
        # at one stride (fasterrcnn_mobilenet_v3_large_fpn: P5 twice) just the first is read
        used = int(round(math.log2(scales[0] / scales[-1]))) + 1
        self.featmap_names, self.spatial_scales = self.featmap_names[:used], scales[:used]

    def forward(self, images: Tensor, image_sizes: Tensor | None = None) -> DetectionOutputs:
        features = self.backbone(normalized_input(self.normalize, images, image_sizes))
        proposals, valid = self.propose(images, list(features.values()), image_sizes)
        return self.detect(images, [features[name] for name in self.featmap_names], proposals, valid, image_sizes)

    def propose(self, images: Tensor, features: list[Tensor], image_sizes: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """RPN: the input and its features -> (proposals float [B, P, 4] xyxy, valid bool [B, P])."""
        objectness, deltas = self.rpn_head(features)
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        static = self.image_size is not None
        anchors = self.anchors if static else graph_anchors(self.anchor_generator, images, features)
        num_anchors = anchors.shape[0]
        objectness = objectness.reshape(-1, num_anchors)
        deltas = deltas.reshape(-1, num_anchors, 4)

        top_idx, top_logits, start = [], [], 0
        for feature, per_location in zip(features, self.anchors_per_location):
            size = feature.shape[-2] * feature.shape[-1] * per_location
            # padding logit: sigmoid 0, never passes the NMS threshold
            level, k = pad_candidates(objectness[:, start : start + size], self.rpn_pre_nms_top_n, static=static,
                                      fill=_PADDING_LOGIT)
            logits, idx = level.topk(k, dim=1)
            top_idx.append(torch.where(idx < size, idx, 0) + start)
            top_logits.append(logits)
            start = start + size
        top_idx = torch.cat(top_idx, dim=1)  # [B, M]
        scores = torch.sigmoid(torch.cat(top_logits, dim=1))
        boxes = self.rpn_box_coder.decode_single(gather_rows(deltas, top_idx).reshape(-1, 4), anchors[top_idx].reshape(-1, 4))
        boxes = clip_to_input(boxes.reshape(-1, top_idx.shape[1], 4), self.image_size, images, image_sizes)
        keep = _not_small(boxes, self.rpn_min_size) & (scores >= self.rpn_score_thresh)
        scores = torch.where(keep, scores, torch.zeros_like(scores))
        # score_threshold 0: masked rows (score 0) never survive, kept ones (>= thresh) do
        num, proposals, _, _ = torch.ops.sdk.batched_nms(
            boxes, scores.unsqueeze(-1) * self.candidate_levels, 0.0, self.rpn_nms_thresh, self.rpn_post_nms_top_n, -1, False
        )
        return proposals, valid_rows(num, self.rpn_post_nms_top_n)

    def detect(self, images: Tensor, features: list[Tensor], proposals: Tensor, valid: Tensor,
               image_sizes: Tensor | None = None) -> DetectionOutputs:
        """Box head: pooled RoI features -> class-wise NMS'd detections."""
        pooled = torch.ops.sdk.multilevel_roi_align(
            proposals, features, self.roi_output_size, self.roi_sampling_ratio, False,
            self.spatial_scales, self.canonical_scale, self.canonical_level,
        )  # [B, P, C, oh, ow]
        num_proposals = proposals.shape[1]
        class_logits, box_regression = self.box_predictor(self.box_head(pooled.flatten(0, 1)))
        num_classes = class_logits.shape[-1]
        boxes = self.box_coder.decode_single(box_regression, proposals.reshape(-1, 4))
        boxes = clip_to_input(boxes.reshape(-1, num_proposals, num_classes, 4), self.image_size, images, image_sizes)
        scores = F.softmax(class_logits, -1).reshape(-1, num_proposals, num_classes)
        boxes, scores = boxes[:, :, 1:], scores[:, :, 1:]  # drop the background class
        keep = _not_small(boxes, _BOX_MIN_SIZE) & valid.unsqueeze(-1)
        scores = torch.where(keep, scores, torch.zeros_like(scores))
        outputs = DetectionOutputs(
            *torch.ops.sdk.batched_nms(boxes, scores, self.score_thr, self.iou_thr, self.max_det, -1, False)
        )
        return shift_labels(outputs, 1)


def _not_small(boxes: Tensor, min_size: float) -> Tensor:
    """bool [...]: ``boxes`` [..., 4] at least ``min_size`` wide and high (torchvision's
    ``remove_small_boxes`` as a mask)."""
    widths, heights = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    return (widths >= min_size) & (heights >= min_size)
