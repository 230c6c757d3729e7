"""Mask R-CNN (He et al.): Faster R-CNN with torchvision's mask branch.

State-dict compatible with torchvision's ``maskrcnn_resnet50_fpn`` (the mask branch
lives in ``roi_heads.mask_roi_pool`` / ``mask_head`` / ``mask_predictor``, as
torchvision's); eval boxes and mask probabilities equal torchvision's on the same
(already resized and normalized) input.
"""

from __future__ import annotations

from torch import nn
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from sdk.models.backbones import resnet50_fpn, tiny_resnet_fpn
from sdk.models.faster_rcnn import FasterRCNN, _faster_rcnn, _settings
from sdk.models.presets import KEEP_RATIO_800_1333, TINY_320
from sdk.models.registry import register_model


class MaskRCNN(FasterRCNN):
    """Faster R-CNN whose ``roi_heads`` also predict one mask per detection.

    Eval: ``model(images)`` -> ``list[dict(boxes [N, 4] xyxy input pixels, scores [N],
    labels [N], masks float32 [N, 1, M, M])]``: ``masks`` are the sigmoid probabilities of
    the detection's class on an M x M grid spanning its box (torchvision's ``RoIHeads``
    output before ``paste_masks_in_image``; M = 2 x the mask RoIAlign size, 28 for the
    R50 model). ``sdk.masks.paste_masks`` puts them into image pixels.
    Train: ``model(images, targets)`` with ``targets[i]["masks"]`` uint8 [M_i, H, W]
    (network-input pixels) -> Faster R-CNN's four losses plus ``"loss_mask"``.
    """


def _mask_modules(channels: int, featmap_names: list[str], *, pool_size: int, layers: tuple[int, ...],
                  num_classes: int) -> dict[str, nn.Module]:
    """torchvision's mask branch: ``MultiScaleRoIAlign`` (``pool_size``, sampling 2), a
    stack of 3x3 convs (``layers`` channels), a 2x transposed conv and a 1x1 per-class conv."""
    return {
        "mask_roi_pool": MultiScaleRoIAlign(featmap_names=featmap_names, output_size=pool_size, sampling_ratio=2),
        "mask_head": MaskRCNNHeads(channels, list(layers), 1),
        "mask_predictor": MaskRCNNPredictor(layers[-1], layers[-1], num_classes),
    }


@register_model(
    "maskrcnn_resnet50_fpn",
    family="mask_rcnn",
    default_preprocess=KEEP_RATIO_800_1333,
    torchvision_name="maskrcnn_resnet50_fpn",
    pretrained_overrides={"frozen_batchnorm": True, "trainable_backbone_layers": 3, "batchnorm_eps": 0.0},
)
def maskrcnn_resnet50_fpn(
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
) -> MaskRCNN:
    """torchvision's ``maskrcnn_resnet50_fpn``: ``fasterrcnn_resnet50_fpn`` plus a 14x14
    mask RoIAlign, four 256-channel 3x3 convs and a 28x28 per-class mask predictor."""
    backbone = resnet50_fpn(
        returned_layers=[1, 2, 3, 4],
        extra_blocks=LastLevelMaxPool(),
        frozen_batchnorm=frozen_batchnorm,
        batchnorm_eps=batchnorm_eps,
        trainable_layers=trainable_backbone_layers,
    )
    anchors = AnchorGenerator(((32,), (64,), (128,), (256,), (512,)), ((0.5, 1.0, 2.0),) * 5)
    names = ["0", "1", "2", "3"]
    return _faster_rcnn(
        backbone=backbone,
        anchor_generator=anchors,
        featmap_names=names,
        num_classes=num_classes,
        representation_size=1024,
        mask_modules=_mask_modules(backbone.out_channels, names, pool_size=14, layers=(256,) * 4, num_classes=num_classes),
        model_type=MaskRCNN,
        **_settings(locals()),
    )


@register_model("maskrcnn_tiny", family="mask_rcnn", default_preprocess=TINY_320)
def maskrcnn_tiny(
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
) -> MaskRCNN:
    """``fasterrcnn_tiny`` plus a mask branch for CPU training at 320 px: 14x14 mask
    RoIAlign, two 32-channel 3x3 convs, 28x28 per-class masks (under 3 GFLOPs with
    100 detections)."""
    backbone = tiny_resnet_fpn(out_channels=64, extra_blocks=LastLevelMaxPool())
    sizes = ((16, 24), (32, 48), (64, 96), (128, 192))
    anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes))
    names = ["0", "1", "2"]
    return _faster_rcnn(
        backbone=backbone,
        anchor_generator=anchors,
        featmap_names=names,
        num_classes=num_classes,
        representation_size=256,
        mask_modules=_mask_modules(backbone.out_channels, names, pool_size=14, layers=(32, 32), num_classes=num_classes),
        model_type=MaskRCNN,
        **_settings(locals()),
    )
