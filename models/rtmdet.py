"""RTMDet (Lyu et al., "RTMDet: An Empirical Study of Designing Real-Time Object
Detectors", 2022), written from the paper and the published architecture with
torchvision and PyTorch parts: CSPNeXt + CSPNeXt-PAFPN (``sdk.models.cspnext``), the
shared-conv / per-level-BN head (``sdk.models.rtmdet_head``), the dynamic soft label
assigner, quality focal loss and GIoU loss (``sdk.models.rtmdet_assigner``,
``torchvision.ops.generalized_box_iou_loss``).

Anchor-free like FCOS: one point per feature-map location at (x * stride, y * stride)
(RTMDet's point offset 0), represented as a stride-sized square ``AnchorGenerator``
anchor centred there, so the box decoding and the DeployModule are the dense families'.
No weights are published under this design's state-dict names: models train from
scratch (``sdk train``).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.ops import generalized_box_iou_loss

from sdk.models.cspnext import CSPNeXt, CSPNeXtPAFPN, CSPNeXtWithPAFPN
from sdk.models.dense_postprocess import select_detections, split_levels
from sdk.models.inputs import as_image_list, check_images, check_targets, clip_sizes, zero_padding
from sdk.models.presets import RTMDET_640, TINY_320
from sdk.models.registry import register_model
from sdk.models.rtmdet_assigner import dynamic_soft_label_assign, quality_focal_loss
from sdk.models.rtmdet_head import RTMDetHead


class RTMDet(nn.Module):
    """Anchor-free dense detector: PAFPN features -> per-location class logits and
    (l, t, r, b) distances.

    Args:
        backbone: images [B, 3, H, W] -> OrderedDict of L maps [B, C, H_l, W_l].
        head: ``RTMDetHead``: features -> ``{"cls_logits": [B, N, K],
            "bbox_regression": [B, N, 4]}``, distances in strides.
        anchor_generator: one square anchor per location, side = the level's stride.
        box_coder: ``BoxLinearCoder(normalize_by_size=True)``.
        score_thresh, nms_thresh, detections_per_img, topk_candidates: eval
            post-processing, as ``RetinaNet`` (scores are ``sigmoid(cls_logits)``).
        bbox_loss_weight: weight of the GIoU loss (RTMDet's 2.0).

    Eval: ``model(images)`` -> ``list[dict(boxes, scores, labels)]`` in input pixels.
    Train: ``model(images, targets)`` -> ``{"classification", "bbox_regression"}``.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: RTMDetHead,
        anchor_generator: AnchorGenerator,
        box_coder: det_utils.BoxLinearCoder,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        topk_candidates: int,
        bbox_loss_weight: float = 2.0,
    ) -> None:
        super().__init__()
        if anchor_generator.num_anchors_per_location()[0] != 1:
            raise ValueError("RTMDet needs exactly one anchor per location")
        self.backbone = backbone
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = box_coder
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.topk_candidates = topk_candidates
        self.bbox_loss_weight = bbox_loss_weight

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None,
                image_sizes: Tensor | None = None):
        check_images(images)
        if image_sizes is not None:  # torchvision-style batch: zero padding, boxes clipped per image
            images = zero_padding(images, image_sizes)
        features = list(self.backbone(images).values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(as_image_list(images), features)
        if self.training:
            return self.compute_loss(check_targets(targets, images.shape[0]), head_outputs, anchors[0])
        outputs, anchors_by_level = split_levels(head_outputs, anchors, features)
        sizes = clip_sizes(images, image_sizes)
        return [
            select_detections(
                scores=[torch.sigmoid(level[i]) for level in outputs["cls_logits"]],
                box_regression=[level[i] for level in outputs["bbox_regression"]],
                anchors=anchors_per_image,
                decode=self.box_coder.decode,
                image_size=sizes[i],
                score_thresh=self.score_thresh,
                topk_candidates=self.topk_candidates,
                nms_thresh=self.nms_thresh,
                detections_per_img=self.detections_per_img,
            )
            for i, anchors_per_image in enumerate(anchors_by_level)
        ]

    def compute_loss(
        self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor], anchors: Tensor
    ) -> dict[str, Tensor]:
        """Quality focal loss over every location and GIoU loss over the positives, both
        normalized by the sum of the positives' IoU targets (RTMDet's rule).

        ``anchors`` [N, 4]: the stride squares, the same for every image of the batch.
        """
        logits, regression = head_outputs["cls_logits"], head_outputs["bbox_regression"]
        points = (anchors[:, :2] + anchors[:, 2:]) / 2
        strides = anchors[:, 2] - anchors[:, 0]
        pred_boxes = self.box_coder.decode(regression, anchors.expand_as(regression))  # [B, N, 4]
        cls_losses, box_losses, quality_sum = [], [], logits.new_zeros(())
        for i, target in enumerate(targets):
            assignment = dynamic_soft_label_assign(
                points=points,
                strides=strides,
                pred_logits=logits[i].detach(),
                pred_boxes=pred_boxes[i].detach(),
                gt_boxes=target["boxes"],
                gt_labels=target["labels"],
            )
            pos = assignment.matched >= 0
            labels = torch.where(pos, target["labels"][assignment.matched.clamp(min=0)], -1) if pos.any() else assignment.matched
            cls_losses.append(quality_focal_loss(logits[i], labels, assignment.ious).sum())
            if pos.any():
                weight = assignment.ious[pos]
                giou = generalized_box_iou_loss(pred_boxes[i][pos], target["boxes"][assignment.matched[pos]])
                box_losses.append((giou * weight).sum())
                quality_sum = quality_sum + weight.sum()
        normalizer = quality_sum.clamp(min=1.0)
        box_loss = torch.stack(box_losses).sum() if box_losses else pred_boxes.sum() * 0.0
        return {
            "classification": torch.stack(cls_losses).sum() / normalizer,
            "bbox_regression": self.bbox_loss_weight * box_loss / normalizer,
        }


def _rtmdet(
    *,
    num_classes: int,
    widen_factor: float,
    deepen_factor: float,
    channels: int,
    **postprocess: float | int,
) -> RTMDet:
    body = CSPNeXt(widen_factor=widen_factor, deepen_factor=deepen_factor)
    neck = CSPNeXtPAFPN(body.out_channels, channels, num_blocks=max(round(3 * deepen_factor), 1))
    backbone = CSPNeXtWithPAFPN(body=body, neck=neck, out_channels=channels)
    strides = backbone.strides
    return RTMDet(
        backbone=backbone,
        head=RTMDetHead(in_channels=channels, feat_channels=channels, num_classes=num_classes, num_levels=len(strides)),
        anchor_generator=AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides)),
        box_coder=det_utils.BoxLinearCoder(normalize_by_size=True),
        **postprocess,
    )


@register_model("rtmdet_tiny", family="rtmdet", default_preprocess=RTMDET_640)
def rtmdet_tiny(
    *,
    num_classes: int,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.65,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
) -> RTMDet:
    """RTMDet-tiny (the paper's sizes: widen 0.375, deepen 0.167, 96-channel neck and
    head; 640x640 letterbox)."""
    return _rtmdet(
        num_classes=num_classes, widen_factor=0.375, deepen_factor=0.167, channels=96,
        score_thresh=score_thresh, nms_thresh=nms_thresh,
        detections_per_img=detections_per_img, topk_candidates=topk_candidates,
    )  # fmt: skip


@register_model("rtmdet_s", family="rtmdet", default_preprocess=RTMDET_640)
def rtmdet_s(
    *,
    num_classes: int,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.65,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
) -> RTMDet:
    """RTMDet-s (widen 0.5, deepen 0.33, 128-channel neck and head; 640x640 letterbox)."""
    return _rtmdet(
        num_classes=num_classes, widen_factor=0.5, deepen_factor=0.33, channels=128,
        score_thresh=score_thresh, nms_thresh=nms_thresh,
        detections_per_img=detections_per_img, topk_candidates=topk_candidates,
    )  # fmt: skip


@register_model("rtmdet_nano", family="rtmdet", default_preprocess=TINY_320)
def rtmdet_nano(
    *,
    num_classes: int,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.65,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
    widen_factor: float = 0.25,
    channels: int = 64,
) -> RTMDet:
    """A CPU-sized RTMDet for tests and the quickstart (not a published size): RTMDet-tiny's
    depth at ``widen_factor`` 0.25 (backbone stages of 32-256 channels) and a
    ``channels``-wide neck and head; 320x320 letterbox."""
    return _rtmdet(
        num_classes=num_classes, widen_factor=widen_factor, deepen_factor=0.167, channels=channels,
        score_thresh=score_thresh, nms_thresh=nms_thresh,
        detections_per_img=detections_per_img, topk_candidates=topk_candidates,
    )  # fmt: skip
