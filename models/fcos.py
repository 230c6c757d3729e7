"""FCOS (Tian et al., "FCOS: Fully Convolutional One-Stage Object Detection"), from torchvision's parts.

State-dict compatible with ``torchvision.models.detection.fcos_resnet50_fpn``; eval
detections equal torchvision's on the same (already resized and normalized) input.
FCOS is anchor-free: its "anchors" are one stride-sized square per feature-map
location, used as the reference points of the box encoding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.fcos import FCOSHead
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from sdk.errors import ConfigError
from sdk.models.backbones import resnet50_fpn, tiny_resnet_fpn
from sdk.models.dense_postprocess import select_detections, split_levels
from sdk.models.inputs import as_image_list, check_images, check_targets, clip_sizes, zero_padding
from sdk.models.presets import KEEP_RATIO_800_1333, TINY_320
from sdk.models.registry import register_model


class FCOS(nn.Module):
    """Anchor-free dense detector: FPN features -> per-location class logits, box
    distances (l, t, r, b) and centerness.

    Args:
        backbone: images [B, 3, H, W] -> OrderedDict of L feature maps [B, C, H_l, W_l].
        head: torchvision ``FCOSHead``: ``head(features)`` -> ``{"cls_logits": [B, N, K],
            "bbox_regression": [B, N, 4], "bbox_ctrness": [B, N, 1]}`` with
            N = sum_l H_l*W_l, and ``head.compute_loss(targets, outputs, anchors, matched_idxs)``.
        anchor_generator: ``AnchorGenerator`` with one square anchor per location whose
            side is the level's stride.
        box_coder: ``BoxLinearCoder(normalize_by_size=True)`` decoding (l, t, r, b).
        center_sampling_radius: a location is a positive only within this many strides
            of a box centre (training).
        regression_range: (lo, hi) multiples of a level's stride: a level learns the
            boxes whose largest centre-to-side distance from the location lies in
            (lo * stride, hi * stride) (the first level has no lower bound, the last no
            upper bound). torchvision's and the FCOS paper's (4, 8) send everything up to
            64 px to the stride-8 level; small inputs want smaller ranges.
        score_thresh: keep (location, class) pairs with sqrt(sigmoid(cls) * sigmoid(ctr))
            above this.
        nms_thresh, detections_per_img, topk_candidates: as in ``RetinaNet``.

    Eval: ``model(images)`` -> ``list[dict(boxes, scores, labels)]`` in input pixels.
    Train: ``model(images, targets)`` -> ``{"classification", "bbox_regression",
    "bbox_ctrness"}`` losses.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        anchor_generator: AnchorGenerator,
        box_coder: det_utils.BoxLinearCoder,
        center_sampling_radius: float,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        topk_candidates: int,
        regression_range: tuple[float, float] = (4.0, 8.0),
    ) -> None:
        super().__init__()
        if anchor_generator.num_anchors_per_location()[0] != 1:
            raise ValueError("FCOS needs exactly one anchor per location")
        if not 0 <= regression_range[0] < regression_range[1]:
            raise ConfigError(f"regression_range must be (lo, hi) with 0 <= lo < hi, got {regression_range}")
        self.backbone = backbone
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = box_coder
        self.center_sampling_radius = center_sampling_radius
        self.regression_range = tuple(regression_range)
        self.score_thresh = score_thresh
        self.nms_thresh = nms_thresh
        self.detections_per_img = detections_per_img
        self.topk_candidates = topk_candidates

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None,
                image_sizes: Tensor | None = None):
        check_images(images)
        if image_sizes is not None:  # torchvision's batch: zero padding, boxes clipped per image
            images = zero_padding(images, image_sizes)
        features = list(self.backbone(images).values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(as_image_list(images), features)
        if self.training:
            targets = check_targets(targets, images.shape[0])
            locations_per_level = [f.shape[-2] * f.shape[-1] for f in features]
            matched_idxs = [
                self.match_locations(a, t["boxes"], locations_per_level) for a, t in zip(anchors, targets)
            ]
            return self.head.compute_loss(targets, head_outputs, anchors, matched_idxs)
        return self.postprocess_detections(head_outputs, anchors, features, clip_sizes(images, image_sizes))

    def match_locations(self, anchors: Tensor, gt_boxes: Tensor, locations_per_level: list[int]) -> Tensor:
        """Assign each location to a ground-truth box (torchvision's ``FCOS.compute_loss`` rule).

        A location matches a box when it lies inside the box, within
        ``center_sampling_radius`` strides of its centre, and the box's largest
        distance to it fits the level (``regression_range`` strides; the first level has
        no lower bound and the last no upper bound); among several, the smallest box wins.

        Args:
            anchors: [N, 4] one stride-sized square per location, xyxy.
            gt_boxes: [M, 4] xyxy.
            locations_per_level: H_l*W_l per level, summing to N.

        Returns:
            int64 [N]: matched box index, or -1 (background).
        """
        if gt_boxes.numel() == 0:
            return torch.full_like(anchors[:, 0], -1, dtype=torch.int64)
        gt_centers = (gt_boxes[:, :2] + gt_boxes[:, 2:]) / 2
        anchor_centers = (anchors[:, :2] + anchors[:, 2:]) / 2
        anchor_sizes = anchors[:, 2] - anchors[:, 0]
        radius = self.center_sampling_radius * anchor_sizes[:, None]
        match = (anchor_centers[:, None, :] - gt_centers[None, :, :]).abs_().max(dim=2).values < radius

        x, y = anchor_centers.unsqueeze(dim=2).unbind(dim=1)
        x0, y0, x1, y1 = gt_boxes.unsqueeze(dim=0).unbind(dim=2)
        distances = torch.stack([x - x0, y - y0, x1 - x, y1 - y], dim=2)  # [N, M, 4]
        match &= distances.min(dim=2).values > 0

        lower_bound = anchor_sizes * self.regression_range[0]
        lower_bound[: locations_per_level[0]] = 0
        upper_bound = anchor_sizes * self.regression_range[1]
        upper_bound[-locations_per_level[-1] :] = float("inf")
        max_distance = distances.max(dim=2).values
        match &= (max_distance > lower_bound[:, None]) & (max_distance < upper_bound[:, None])

        gt_areas = (gt_boxes[:, 2] - gt_boxes[:, 0]) * (gt_boxes[:, 3] - gt_boxes[:, 1])
        preference = match.to(torch.float32) * (1e8 - gt_areas[None, :])  # smallest matching box first
        best, matched = preference.max(dim=1)
        matched[best < 1e-5] = -1
        return matched

    def postprocess_detections(
        self,
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        features: list[Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Per image: sqrt(cls * centerness) scores, per-level top-k, decode, clip, class-wise NMS."""
        outputs, anchors_by_level = split_levels(head_outputs, anchors, features)
        detections = []
        for i, anchors_per_image in enumerate(anchors_by_level):
            scores = [
                torch.sqrt(torch.sigmoid(cls[i]) * torch.sigmoid(ctr[i]))
                for cls, ctr in zip(outputs["cls_logits"], outputs["bbox_ctrness"])
            ]
            detections.append(
                select_detections(
                    scores=scores,
                    box_regression=[level[i] for level in outputs["bbox_regression"]],
                    anchors=anchors_per_image,
                    decode=self.box_coder.decode,
                    image_size=image_sizes[i],
                    score_thresh=self.score_thresh,
                    topk_candidates=self.topk_candidates,
                    nms_thresh=self.nms_thresh,
                    detections_per_img=self.detections_per_img,
                )
            )
        return detections


def _fcos(
    *,
    backbone: nn.Module,
    strides: tuple[int, ...],
    num_classes: int,
    num_convs: int,
    center_sampling_radius: float,
    regression_range: tuple[float, float],
    **postprocess: float | int,
) -> FCOS:
    # One anchor per location, as large as the level's stride (torchvision's FCOS default).
    anchor_generator = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))
    return FCOS(
        backbone=backbone,
        head=FCOSHead(backbone.out_channels, 1, num_classes, num_convs=num_convs),
        anchor_generator=anchor_generator,
        box_coder=det_utils.BoxLinearCoder(normalize_by_size=True),
        center_sampling_radius=center_sampling_radius,
        regression_range=regression_range,
        **postprocess,
    )


@register_model(
    "fcos_resnet50_fpn",
    family="fcos",
    default_preprocess=KEEP_RATIO_800_1333,
    torchvision_name="fcos_resnet50_fpn",
    pretrained_overrides={"frozen_batchnorm": True, "trainable_backbone_layers": 3},
)
def fcos_resnet50_fpn(
    *,
    num_classes: int,
    score_thresh: float = 0.2,
    nms_thresh: float = 0.6,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
    center_sampling_radius: float = 1.5,
    frozen_batchnorm: bool = False,
    batchnorm_eps: float = 1e-5,
    trainable_backbone_layers: int = 5,
) -> FCOS:
    """torchvision's ``fcos_resnet50_fpn``: ResNet-50 + FPN P3-P7, 4-conv GroupNorm head."""
    backbone = resnet50_fpn(
        returned_layers=[2, 3, 4],
        extra_blocks=LastLevelP6P7(256, 256),
        frozen_batchnorm=frozen_batchnorm,
        batchnorm_eps=batchnorm_eps,
        trainable_layers=trainable_backbone_layers,
    )
    return _fcos(
        backbone=backbone,
        strides=(8, 16, 32, 64, 128),
        num_classes=num_classes,
        num_convs=4,
        center_sampling_radius=center_sampling_radius,
        regression_range=(4.0, 8.0),
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
    )


@register_model("fcos_tiny", family="fcos", default_preprocess=TINY_320)
def fcos_tiny(
    *,
    num_classes: int,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.6,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
    center_sampling_radius: float = 1.5,
    regression_range: tuple[float, float] = (2.0, 4.0),
) -> FCOS:
    """An FCOS for CPU training at 320 px: ``TinyResNet`` + 64-channel FPN P3-P7 and a
    2-conv GroupNorm head (torchvision's ``FCOSHead`` with ``num_convs=2``).

    Differences from torchvision's settings, for small inputs: the score threshold is
    COCO evaluation's usual 0.05 (not 0.2), and levels learn half torchvision's object
    sizes (``regression_range`` (2, 4) strides, not (4, 8)), so objects of a 320 px
    image spread over P3-P5 instead of nearly all landing on P3 (+0.015 mAP and +0.05
    AR@100 on the synthetic shapes after 900 iterations).
    """
    return _fcos(
        backbone=tiny_resnet_fpn(out_channels=64, extra_blocks=LastLevelP6P7(64, 64)),
        strides=(8, 16, 32, 64, 128),
        num_classes=num_classes,
        num_convs=2,
        center_sampling_radius=center_sampling_radius,
        regression_range=regression_range,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
    )
