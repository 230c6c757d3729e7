"""Faster R-CNN (Ren et al.) with FPN, assembled from torchvision's RPN and RoI heads.

State-dict compatible with torchvision's ``fasterrcnn_resnet50_fpn`` and
``fasterrcnn_mobilenet_v3_large_fpn`` (attributes ``backbone``, ``rpn``,
``roi_heads``); eval detections equal torchvision's on the same (already resized and
normalized) input.
"""

from __future__ import annotations

from torch import Tensor, nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.roi_heads import RoIHeads
from torchvision.models.detection.rpn import RegionProposalNetwork, RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from sdk.models.backbones import mobilenet_v3_large_fpn, resnet50_fpn, tiny_resnet_fpn
from sdk.models.inputs import as_image_list, check_images, check_targets, zero_padding
from sdk.models.presets import KEEP_RATIO_800_1333, TINY_320
from sdk.models.registry import register_model


class FasterRCNN(nn.Module):
    """Two-stage detector: backbone -> region proposals (``rpn``) -> per-RoI boxes (``roi_heads``).

    Args:
        backbone: images [B, 3, H, W] -> OrderedDict of feature maps [B, C, H_l, W_l]
            (keys as ``roi_heads.box_roi_pool.featmap_names`` expects).
        rpn: torchvision ``RegionProposalNetwork`` (owns the anchor generator, the RPN
            head and the proposal top-k/NMS settings ``rpn_*``).
        roi_heads: torchvision ``RoIHeads`` (owns ``box_roi_pool`` =
            ``MultiScaleRoIAlign``, ``box_head``, ``box_predictor``, ``box_coder`` and the
            detection settings ``score_thresh``, ``nms_thresh``, ``detections_per_img``).

    Eval: ``model(images)`` -> ``list[dict(boxes, scores, labels)]`` in input pixels.
    Train: ``model(images, targets)`` -> ``{"loss_classifier", "loss_box_reg",
    "loss_objectness", "loss_rpn_box_reg"}``.
    """

    def __init__(self, *, backbone: nn.Module, rpn: RegionProposalNetwork, roi_heads: RoIHeads) -> None:
        super().__init__()
        self.backbone = backbone
        self.rpn = rpn
        self.roi_heads = roi_heads

    def forward(self, images: Tensor, targets: list[dict[str, Tensor]] | None = None,
                image_sizes: Tensor | None = None):
        check_images(images)
        targets = check_targets(targets, images.shape[0]) if self.training else None
        if image_sizes is not None:  # torchvision's batch: zero padding, boxes clipped per image
            images = zero_padding(images, image_sizes)
        image_list = as_image_list(images, image_sizes)
        features = self.backbone(images)
        proposals, proposal_losses = self.rpn(image_list, features, targets)
        detections, detector_losses = self.roi_heads(features, proposals, image_list.image_sizes, targets)
        if self.training:
            return {**detector_losses, **proposal_losses}
        return detections


def _faster_rcnn(
    *,
    backbone: nn.Module,
    anchor_generator: AnchorGenerator,
    featmap_names: list[str],
    num_classes: int,
    representation_size: int,
    rpn_pre_nms_top_n_train: int,
    rpn_pre_nms_top_n_test: int,
    rpn_post_nms_top_n_train: int,
    rpn_post_nms_top_n_test: int,
    rpn_nms_thresh: float,
    rpn_score_thresh: float,
    rpn_batch_size_per_image: int,
    box_score_thresh: float,
    box_nms_thresh: float,
    box_detections_per_img: int,
    box_batch_size_per_image: int,
    mask_modules: dict[str, nn.Module] | None = None,
    model_type: type[FasterRCNN] | None = None,
) -> FasterRCNN:
    """Wire torchvision's RPN and RoI heads with torchvision's ``FasterRCNN`` defaults
    for everything not passed (IoU thresholds, sampling fractions, box-coder weights).

    ``mask_modules`` (``mask_roi_pool``, ``mask_head``, ``mask_predictor``) add
    torchvision's mask branch to the RoI heads; ``model_type`` is the class built
    (``FasterRCNN`` by default, ``sdk.models.MaskRCNN`` for the mask family)."""
    channels = backbone.out_channels
    rpn = RegionProposalNetwork(
        anchor_generator,
        RPNHead(channels, anchor_generator.num_anchors_per_location()[0]),
        fg_iou_thresh=0.7,
        bg_iou_thresh=0.3,
        batch_size_per_image=rpn_batch_size_per_image,
        positive_fraction=0.5,
        pre_nms_top_n={"training": rpn_pre_nms_top_n_train, "testing": rpn_pre_nms_top_n_test},
        post_nms_top_n={"training": rpn_post_nms_top_n_train, "testing": rpn_post_nms_top_n_test},
        nms_thresh=rpn_nms_thresh,
        score_thresh=rpn_score_thresh,
    )
    box_roi_pool = MultiScaleRoIAlign(featmap_names=featmap_names, output_size=7, sampling_ratio=2)
    roi_heads = RoIHeads(
        box_roi_pool,
        TwoMLPHead(channels * 7 * 7, representation_size),
        FastRCNNPredictor(representation_size, num_classes),
        fg_iou_thresh=0.5,
        bg_iou_thresh=0.5,
        batch_size_per_image=box_batch_size_per_image,
        positive_fraction=0.25,
        bbox_reg_weights=None,
        score_thresh=box_score_thresh,
        nms_thresh=box_nms_thresh,
        detections_per_img=box_detections_per_img,
        **(mask_modules or {}),
    )
    return (model_type or FasterRCNN)(backbone=backbone, rpn=rpn, roi_heads=roi_heads)


_PRETRAINED = {"frozen_batchnorm": True, "trainable_backbone_layers": 3}


@register_model(
    "fasterrcnn_resnet50_fpn",
    family="faster_rcnn",
    default_preprocess=KEEP_RATIO_800_1333,
    torchvision_name="fasterrcnn_resnet50_fpn",
    pretrained_overrides={**_PRETRAINED, "batchnorm_eps": 0.0},
)
def fasterrcnn_resnet50_fpn(
    *,
    num_classes: int,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_test: int = 1000,
    rpn_nms_thresh: float = 0.7,
    rpn_score_thresh: float = 0.0,
    rpn_batch_size_per_image: int = 256,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 100,
    box_batch_size_per_image: int = 512,
    frozen_batchnorm: bool = False,
    batchnorm_eps: float = 1e-5,
    trainable_backbone_layers: int = 5,
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_resnet50_fpn``: ResNet-50 + FPN P2-P6, 3 anchors per
    location (one size per level, 32-512, x ratios 0.5/1/2), 7x7 RoIAlign, 2-FC head."""
    backbone = resnet50_fpn(
        returned_layers=[1, 2, 3, 4],
        extra_blocks=LastLevelMaxPool(),
        frozen_batchnorm=frozen_batchnorm,
        batchnorm_eps=batchnorm_eps,
        trainable_layers=trainable_backbone_layers,
    )
    anchors = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    return _faster_rcnn(
        backbone=backbone,
        anchor_generator=anchors,
        featmap_names=["0", "1", "2", "3"],
        num_classes=num_classes,
        representation_size=1024,
        **_settings(locals()),
    )


@register_model(
    "fasterrcnn_mobilenet_v3_large_fpn",
    family="faster_rcnn",
    default_preprocess=KEEP_RATIO_800_1333,
    torchvision_name="fasterrcnn_mobilenet_v3_large_fpn",
    pretrained_overrides=_PRETRAINED,
)
def fasterrcnn_mobilenet_v3_large_fpn(
    *,
    num_classes: int,
    rpn_pre_nms_top_n_train: int = 2000,
    rpn_pre_nms_top_n_test: int = 1000,
    rpn_post_nms_top_n_train: int = 2000,
    rpn_post_nms_top_n_test: int = 1000,
    rpn_nms_thresh: float = 0.7,
    rpn_score_thresh: float = 0.05,
    rpn_batch_size_per_image: int = 256,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 100,
    box_batch_size_per_image: int = 512,
    frozen_batchnorm: bool = False,
    batchnorm_eps: float = 1e-5,
    trainable_backbone_layers: int = 6,
) -> FasterRCNN:
    """torchvision's ``fasterrcnn_mobilenet_v3_large_fpn``: MobileNetV3-Large + FPN at
    strides 16/32 (+ max-pool level), 15 anchors per location (sizes 32-512 x 3 ratios)."""
    backbone = mobilenet_v3_large_fpn(
        frozen_batchnorm=frozen_batchnorm, batchnorm_eps=batchnorm_eps, trainable_layers=trainable_backbone_layers
    )
    anchors = AnchorGenerator(((32, 64, 128, 256, 512),) * 3, ((0.5, 1.0, 2.0),) * 3)
    return _faster_rcnn(
        backbone=backbone,
        anchor_generator=anchors,
        featmap_names=["0", "1", "2", "3"],
        num_classes=num_classes,
        representation_size=1024,
        **_settings(locals()),
    )


@register_model("fasterrcnn_tiny", family="faster_rcnn", default_preprocess=TINY_320)
def fasterrcnn_tiny(
    *,
    num_classes: int,
    rpn_pre_nms_top_n_train: int = 1000,
    rpn_pre_nms_top_n_test: int = 500,
    rpn_post_nms_top_n_train: int = 500,
    rpn_post_nms_top_n_test: int = 300,
    rpn_nms_thresh: float = 0.7,
    rpn_score_thresh: float = 0.0,
    rpn_batch_size_per_image: int = 256,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    box_detections_per_img: int = 100,
    box_batch_size_per_image: int = 128,
) -> FasterRCNN:
    """A Faster R-CNN for CPU training at 320 px: ``TinyResNet`` + 64-channel FPN at
    strides 8-32 (+ max-pool level), 6 anchors per location (sizes 16-192 x 3 ratios),
    a 256-wide 2-FC box head and fewer proposals than torchvision's defaults."""
    backbone = tiny_resnet_fpn(out_channels=64, extra_blocks=LastLevelMaxPool())
    sizes = ((16, 24), (32, 48), (64, 96), (128, 192))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    return _faster_rcnn(
        backbone=backbone,
        anchor_generator=anchors,
        featmap_names=["0", "1", "2"],
        num_classes=num_classes,
        representation_size=256,
        **_settings(locals()),
    )


def _settings(builder_locals: dict) -> dict:
    """The RPN / box-head settings among a builder's arguments."""
    return {k: v for k, v in builder_locals.items() if k.startswith(("rpn_", "box_"))}
