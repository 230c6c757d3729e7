"""SSDlite (Sandler et al., MobileNetV2 paper, section 6.2) from torchvision's parts.

State-dict compatible with ``torchvision.models.detection.ssdlite320_mobilenet_v3_large``
(attributes ``backbone``, ``head``, ``anchor_generator``); eval detections equal
torchvision's on the same (already resized and normalized) input.
"""

from __future__ import annotations

from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead
from torchvision.models.mobilenetv3 import mobilenet_v3_large
from torchvision.ops import boxes as box_ops

from sdk.errors import ConfigError
from sdk.models.inputs import as_image_list, check_images, check_targets
from sdk.models.presets import SSDLITE_320, TINY_320
from sdk.models.registry import register_model


class SSD(nn.Module):
    """Single-shot detector with softmax classification over default boxes.

    Args:
        backbone: images [B, 3, H, W] -> OrderedDict of L feature maps [B, C_l, H_l, W_l].
        head: ``head(features)`` -> ``{"bbox_regression": [B, N, 4], "cls_logits": [B, N, K]}``
            with N = sum_l H_l*W_l*A_l (location-major, then box), class 0 = background.
        anchor_generator: ``DefaultBoxGenerator`` (boxes relative to the input size).
        box_coder: ``BoxCoder(weights=(10, 10, 5, 5))``.
        proposal_matcher: ``SSDMatcher`` assigning default boxes to ground truth.
        score_thresh: per-class softmax score a candidate must exceed.
        nms_thresh: IoU threshold of the class-wise NMS.
        detections_per_img: detections kept per image after NMS.
        topk_candidates: candidates kept per class before NMS.
        positive_fraction: hard-negative mining keeps (1 - f) / f negatives per positive.

    Eval: ``model(images)`` -> ``list[dict(boxes, scores, labels)]`` in input pixels.
    Train: ``model(images, targets)`` -> ``{"bbox_regression", "classification"}``.
    """

    def __init__(
        self,
        *,
        backbone: nn.Module,
        head: nn.Module,
        anchor_generator: DefaultBoxGenerator,
        box_coder: det_utils.BoxCoder,
        proposal_matcher: det_utils.Matcher,
        score_thresh: float,
        nms_thresh: float,
        detections_per_img: int,
        topk_candidates: int,
        positive_fraction: float,
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
        self.neg_to_pos_ratio = (1.0 - positive_fraction) / positive_fraction

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None):
        check_images(images)
        features = list(self.backbone(images).values())
        head_outputs = self.head(features)
        anchors = self.anchor_generator(as_image_list(images), features)
        if self.training:
            return self.compute_loss(check_targets(targets, images.shape[0]), head_outputs, anchors)
        return self.postprocess_detections(head_outputs, anchors, tuple(images.shape[-2:]))

    def compute_loss(
        self, targets: list[dict[str, Tensor]], head_outputs: dict[str, Tensor], anchors: list[Tensor]
    ) -> dict[str, Tensor]:
        """torchvision's ``SSD.compute_loss``: smooth-L1 on matched boxes, softmax cross
        entropy on positives plus the hardest ``neg_to_pos_ratio`` negatives per positive,
        both divided by the number of positives."""
        bbox_loss, cls_targets, num_foreground = [], [], 0
        for target, regression, anchors_per_image in zip(targets, head_outputs["bbox_regression"], anchors):
            if target["boxes"].numel() == 0:
                matched = torch.full_like(anchors_per_image[:, 0], -1, dtype=torch.int64)
            else:
                matched = self.proposal_matcher(box_ops.box_iou(target["boxes"], anchors_per_image))
            foreground = torch.where(matched >= 0)[0]
            matched_gt = matched[foreground]
            num_foreground += matched_gt.numel()

            target_regression = self.box_coder.encode_single(target["boxes"][matched_gt], anchors_per_image[foreground])
            bbox_loss.append(F.smooth_l1_loss(regression[foreground], target_regression, reduction="sum"))

            classes = torch.zeros_like(matched)
            classes[foreground] = target["labels"][matched_gt]
            cls_targets.append(classes)

        cls_targets = torch.stack(cls_targets)
        cls_logits = head_outputs["cls_logits"]
        num_classes = cls_logits.size(-1)
        cls_loss = F.cross_entropy(cls_logits.view(-1, num_classes), cls_targets.view(-1), reduction="none")
        cls_loss = cls_loss.view(cls_targets.size())

        # Hard negative mining: per image, the negatives with the largest loss, up to
        # neg_to_pos_ratio times the number of positives.
        foreground_mask = cls_targets > 0
        num_negative = self.neg_to_pos_ratio * foreground_mask.sum(1, keepdim=True)
        negative_loss = cls_loss.clone()
        negative_loss[foreground_mask] = -float("inf")
        _, order = negative_loss.sort(1, descending=True)
        background_mask = order.sort(1)[1] < num_negative

        normalizer = max(1, num_foreground)
        return {
            "bbox_regression": torch.stack(bbox_loss).sum() / normalizer,
            "classification": (cls_loss[foreground_mask].sum() + cls_loss[background_mask].sum()) / normalizer,
        }

    def postprocess_detections(
        self, head_outputs: dict[str, Tensor], anchors: list[Tensor], image_size: tuple[int, int]
    ) -> list[dict[str, Tensor]]:
        """torchvision's ``SSD.postprocess_detections``: per image, softmax over classes,
        decode + clip every box, then per foreground class the boxes scoring above
        ``score_thresh`` (at most ``topk_candidates``), class-wise NMS and the
        ``detections_per_img`` best."""
        probabilities = F.softmax(head_outputs["cls_logits"], dim=-1)
        num_classes = probabilities.size(-1)
        detections = []
        for regression, scores, anchors_per_image in zip(head_outputs["bbox_regression"], probabilities, anchors):
            boxes = box_ops.clip_boxes_to_image(self.box_coder.decode_single(regression, anchors_per_image), image_size)
            image_boxes, image_scores, image_labels = [], [], []
            for label in range(1, num_classes):
                score = scores[:, label]
                keep = score > self.score_thresh
                score, box = score[keep], boxes[keep]
                score, order = score.topk(min(self.topk_candidates, score.numel()))
                image_boxes.append(box[order])
                image_scores.append(score)
                image_labels.append(torch.full_like(score, label, dtype=torch.int64))
            boxes_, scores_, labels_ = torch.cat(image_boxes), torch.cat(image_scores), torch.cat(image_labels)
            keep = box_ops.batched_nms(boxes_, scores_, labels_, self.nms_thresh)[: self.detections_per_img]
            detections.append({"boxes": boxes_[keep], "scores": scores_[keep], "labels": labels_[keep]})
        return detections


def _normal_init(module: nn.Module) -> None:
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            nn.init.normal_(layer.weight, mean=0.0, std=0.03)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def _ssdlite_mobilenet_v3(
    *,
    num_classes: int,
    width_mult: float,
    trainable_backbone_layers: int,
    score_thresh: float,
    nms_thresh: float,
    detections_per_img: int,
    topk_candidates: int,
) -> SSD:
    """What ``ssdlite320_mobilenet_v3_large`` builds without pretrained backbone weights:
    MobileNetV3-Large (reduced tail, normal init) split at C4's expansion layer, four
    extra blocks, six levels of default boxes."""
    norm_layer = partial(nn.BatchNorm2d, eps=0.001, momentum=0.03)
    trunk = mobilenet_v3_large(weights=None, norm_layer=norm_layer, reduced_tail=True, width_mult=width_mult)
    _normal_init(trunk)  # torchvision's init when no pretrained backbone is used
    features = trunk.features
    # Stage boundaries as torchvision's ``ssdlite._mobilenet_extractor`` finds them; the
    # trunk is split at C4 (``stage_indices[-2]``) and the first stages may be frozen.
    stage_indices = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    num_stages = len(stage_indices)
    if not 0 <= trainable_backbone_layers <= num_stages:
        raise ConfigError(f"trainable_backbone_layers must be in [0, {num_stages}]")
    if trainable_backbone_layers == 0:
        freeze_before = len(features)
    else:
        freeze_before = stage_indices[num_stages - trainable_backbone_layers]
    for block in features[:freeze_before]:
        block.requires_grad_(False)
    backbone = SSDLiteFeatureExtractorMobileNet(features, stage_indices[-2], norm_layer, width_mult=width_mult)

    anchor_generator = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    out_channels = det_utils.retrieve_out_channels(backbone, (320, 320))
    return SSD(
        backbone=backbone,
        head=SSDLiteHead(out_channels, anchor_generator.num_anchors_per_location(), num_classes, norm_layer),
        anchor_generator=anchor_generator,
        box_coder=det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0)),
        proposal_matcher=det_utils.SSDMatcher(0.5),
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
        positive_fraction=0.25,
    )


@register_model(
    "ssdlite320_mobilenet_v3_large",
    family="ssdlite",
    default_preprocess=SSDLITE_320,
    torchvision_name="ssdlite320_mobilenet_v3_large",
)
def ssdlite320_mobilenet_v3_large(
    *,
    num_classes: int,
    score_thresh: float = 0.001,
    nms_thresh: float = 0.55,
    detections_per_img: int = 300,
    topk_candidates: int = 300,
    trainable_backbone_layers: int = 6,
) -> SSD:
    """torchvision's ``ssdlite320_mobilenet_v3_large`` (its defaults; 320x320 input)."""
    return _ssdlite_mobilenet_v3(
        num_classes=num_classes,
        width_mult=1.0,
        trainable_backbone_layers=trainable_backbone_layers,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
    )


@register_model("ssdlite_tiny", family="ssdlite", default_preprocess=TINY_320)
def ssdlite_tiny(
    *,
    num_classes: int,
    score_thresh: float = 0.01,
    nms_thresh: float = 0.55,
    detections_per_img: int = 100,
    topk_candidates: int = 300,
) -> SSD:
    """SSDlite320 at half width (MobileNetV3-Large ``width_mult=0.5``, half-width extra
    blocks) for CPU tests at 320 px."""
    return _ssdlite_mobilenet_v3(
        num_classes=num_classes,
        width_mult=0.5,
        trainable_backbone_layers=6,
        score_thresh=score_thresh,
        nms_thresh=nms_thresh,
        detections_per_img=detections_per_img,
        topk_candidates=topk_candidates,
    )
