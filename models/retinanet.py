"""RetinaNet (Lin et al., "Focal Loss for Dense Object Detection"), from torchvision's parts.

State-dict compatible with ``torchvision.models.detection.retinanet_resnet50_fpn``
(same attribute names: ``backbone``, ``head``, ``anchor_generator``); eval detections
equal torchvision's on the same (already resized and normalized) input.
"""

from __future__ import annotations

import math
from functools import partial

import torch
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops import boxes as box_ops
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from sdk.models.backbones import resnet50_fpn, tiny_resnet_fpn
from sdk.models.dense_postprocess import select_detections, split_levels
from sdk.models.inputs import as_image_list, check_images, check_targets, clip_sizes, zero_padding
from sdk.models.presets import KEEP_RATIO_800_1333, TINY_320
from sdk.models.registry import register_model


class RetinaNet(nn.Module):
    """Dense anchor-based detector: FPN features -> per-anchor class logits and box deltas.

    Args:
        backbone: images [B, 3, H, W] -> OrderedDict of L feature maps [B, C, H_l, W_l].
        head: torchvision ``RetinaNetHead``-like: ``head(features)`` ->
            ``{"cls_logits": [B, sum_l H_l*W_l*A, K], "bbox_regression": [B, sum_l H_l*W_l*A, 4]}``
            (location-major, then anchor), and ``head.compute_loss(targets, outputs,
            anchors, matched_idxs)``.
        anchor_generator: ``AnchorGenerator`` giving A anchors per location.
        box_coder: decodes ``bbox_regression`` against anchors (``decode_single``).
        proposal_matcher: assigns anchors to ground truth for the loss
            (index >= 0 matched, -1 background, -2 ignored).
        score_thresh: keep (anchor, class) pairs with sigmoid score above this.
        nms_thresh: IoU threshold of the class-wise NMS.
        detections_per_img: detections kept per image after NMS.
        topk_candidates: candidates kept per pyramid level before NMS.

    Eval: ``model(images)`` -> ``list[dict(boxes [N, 4] xyxy float in input pixels,
    scores [N], labels [N] int64)]``. Train: ``model(images, targets)`` ->
    ``{"classification", "bbox_regression"}`` losses.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        anchor_generator: AnchorGenerator,
        box_coder: det_utils.BoxCoder,
        proposal_matcher: det_utils.Matcher,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        topk_candidates: int,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.anchor_generator = anchor_generator
        self.box_coder = box_coder
        self.proposal_matcher = proposal_matcher
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
            return self.compute_loss(check_targets(targets, images.shape[0]), head_outputs, anchors)
        return self.postprocess_detections(head_outputs, anchors, features, clip_sizes(images, image_sizes))

    def compute_loss(
        self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor], anchors: list[Tensor]
    ) -> dict[str, Tensor]:
        """Match anchors [N, 4] to each image's boxes by IoU, then the head's focal + L1 losses."""
        matched_idxs = []
        for anchors_per_image, targets_per_image in zip(anchors, targets):
            if targets_per_image["boxes"].numel() == 0:
                matched_idxs.append(torch.full_like(anchors_per_image[:, 0], -1, dtype=torch.int64))
                continue
            quality = box_ops.box_iou(targets_per_image["boxes"], anchors_per_image)
            matched_idxs.append(self.proposal_matcher(quality))
        return self.head.compute_loss(targets, head_outputs, anchors, matched_idxs)

    def postprocess_detections(
        self,
        head_outputs: dict[str, Tensor],
        anchors: list[Tensor],
        features: list[Tensor],
        image_sizes: list[tuple[int, int]],
    ) -> list[dict[str, Tensor]]:
        """Per image: sigmoid scores, per-level top-k, decode, clip, class-wise NMS."""
        outputs, anchors_by_level = split_levels(head_outputs, anchors, features)
        return [
            select_detections(
                scores=[torch.sigmoid(level[i]) for level in outputs["cls_logits"]],
                box_regression=[level[i] for level in outputs["bbox_regression"]],
                anchors=anchors_by_level[i],
                decode=self.box_coder.decode_single,
                image_size=image_sizes[i],
                score_thresh=self.score_thresh,
                topk_candidates=self.topk_candidates,
                nms_thresh=self.nms_thresh,
                detections_per_img=self.detections_per_img,
            )
            for i in range(len(anchors))
        ]


def _anchor_generator(base_sizes: tuple[int, ...], scales: tuple[float, ...]) -> AnchorGenerator:
    """torchvision's RetinaNet anchors: per level, every scale of the base size x ratios 0.5/1/2."""
    sizes = tuple(tuple(int(size * scale) for scale in scales) for size in base_sizes)
    return AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))


def _retinanet(
    *,
    backbone: nn.Module,
    anchor_generator: AnchorGenerator,
    num_classes: int,
    head_norm: type[nn.Module] | partial | None,
    fg_iou_thresh: float,
    bg_iou_thresh: float,
    **postprocess: float | int,
) -> RetinaNet:
    num_anchors = anchor_generator.num_anchors_per_location()[0]
    return RetinaNet(
        backbone=backbone,
        head=RetinaNetHead(backbone.out_channels, num_anchors, num_classes, norm_layer=head_norm),
        anchor_generator=anchor_generator,
        box_coder=det_utils.BoxCoder(weights=(1.0, 1.0, 1.0, 1.0)),
        proposal_matcher=det_utils.Matcher(fg_iou_thresh, bg_iou_thresh, allow_low_quality_matches=True),
        **postprocess,
    )


@register_model(
    "retinanet_resnet50_fpn",
    family="retinanet",
    default_preprocess=KEEP_RATIO_800_1333,
    torchvision_name="retinanet_resnet50_fpn",
    pretrained_overrides={"frozen_batchnorm": True, "batchnorm_eps": 0.0, "trainable_backbone_layers": 3},
)
def retinanet_resnet50_fpn(
    *,
    num_classes: int,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 300,
    topk_candidates: int = 1000,
    fg_iou_thresh: float = 0.5,
    bg_iou_thresh: float = 0.4,
    frozen_batchnorm: bool = False,
    batchnorm_eps: float = 1e-5,
    trainable_backbone_layers: int = 5,
) -> RetinaNet:
    """torchvision's ``retinanet_resnet50_fpn``: ResNet-50 + FPN P3-P7, 9 anchors per location
    (sizes 32-512 x 3 scales x 3 ratios). Defaults are torchvision's (from scratch:
    trainable BatchNorm, all layers trainable); ``pretrained_overrides`` give its
    pretrained-weights configuration."""
    backbone = resnet50_fpn(
        returned_layers=[2, 3, 4],
        extra_blocks=LastLevelP6P7(256, 256),
        frozen_batchnorm=frozen_batchnorm,
        batchnorm_eps=batchnorm_eps,
        trainable_layers=trainable_backbone_layers,
    )
    return _retinanet(
        backbone=backbone,
        anchor_generator=_anchor_generator((32, 64, 128, 256, 512), (1.0, 2 ** (1 / 3), 2 ** (2 / 3))),
        num_classes=num_classes,
        head_norm=None,
        fg_iou_thresh=fg_iou_thresh,
        bg_iou_thresh=bg_iou_thresh,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
    )


@register_model("retinanet_tiny", family="retinanet", default_preprocess=TINY_320)
def retinanet_tiny(
    *,
    num_classes: int,
    score_thresh: float = 0.05,
    nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    topk_candidates: int = 1000,
    fg_iou_thresh: float = 0.5,
    bg_iou_thresh: float = 0.4,
) -> RetinaNet:
    """A RetinaNet for CPU training at 320 px: ``TinyResNet`` + 64-channel FPN P3-P7,
    GroupNorm head (as torchvision's v2), 6 anchors per location (sizes 16-256 x 2
    scales x 3 ratios, half torchvision's since objects in 320 px images are small)."""
    return _retinanet(
        backbone=tiny_resnet_fpn(out_channels=64, extra_blocks=LastLevelP6P7(64, 64)),
        anchor_generator=_anchor_generator((16, 32, 64, 128, 256), (1.0, math.sqrt(2.0))),
        num_classes=num_classes,
        head_norm=partial(nn.GroupNorm, 32),
        fg_iou_thresh=fg_iou_thresh,
        bg_iou_thresh=bg_iou_thresh,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
    )
