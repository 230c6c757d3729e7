"""Feature-pyramid backbones, built from torchvision's parts.

Every backbone here is a ``torchvision.models.detection.backbone_utils.BackboneWithFPN``
(``body`` = the trunk's selected stages, ``fpn`` = ``FeaturePyramidNetwork``): it maps
images [B, 3, H, W] to an ``OrderedDict`` of feature maps [B, out_channels, H/s, W/s]
keyed "0", "1", ... (then "p6"/"p7" or "pool" from the extra block), finest first, and
exposes ``out_channels``.

The R50 and MobileNetV3 backbones are torchvision's own (``resnet_fpn_backbone``,
``mobilenet_backbone``) with the arguments torchvision's detection builders use, so
their state_dict keys are torchvision's.
"""

from __future__ import annotations

from functools import partial
from typing import Callable

from torch import Tensor, nn
from torchvision.models.detection.backbone_utils import BackboneWithFPN, mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.resnet import BasicBlock, conv1x1
from torchvision.ops.feature_pyramid_network import ExtraFPNBlock
from torchvision.ops.misc import Conv2dNormActivation, FrozenBatchNorm2d

from sdk.errors import ConfigError


def batchnorm(*, frozen: bool, eps: float) -> Callable[[int], nn.Module]:
    """``BatchNorm2d`` (trained) or ``FrozenBatchNorm2d`` (fixed statistics and affine,
    what torchvision uses when it starts from pretrained weights) with ``eps``."""
    return partial(FrozenBatchNorm2d if frozen else nn.BatchNorm2d, eps=eps)


def _check_trainable(trainable_layers: int, max_value: int) -> None:
    if not 0 <= trainable_layers <= max_value:
        raise ConfigError(f"trainable_backbone_layers must be in [0, {max_value}], got {trainable_layers}")


def resnet50_fpn(
    *,
    returned_layers: list[int],
    extra_blocks: ExtraFPNBlock | None,
    frozen_batchnorm: bool,
    batchnorm_eps: float,
    trainable_layers: int,
) -> BackboneWithFPN:
    """ResNet-50 + FPN (256 channels) as torchvision's R50 detection builders make it.

    ``trainable_layers`` (0-5) counts ResNet stages from the last one whose parameters
    train; the others are frozen (``requires_grad=False``).
    """
    _check_trainable(trainable_layers, 5)
    return resnet_fpn_backbone(
        backbone_name="resnet50",
        weights=None,
        norm_layer=batchnorm(frozen=frozen_batchnorm, eps=batchnorm_eps),
        trainable_layers=trainable_layers,
        returned_layers=returned_layers,
        extra_blocks=extra_blocks,
    )


def mobilenet_v3_large_fpn(*, frozen_batchnorm: bool, batchnorm_eps: float, trainable_layers: int) -> BackboneWithFPN:
    """MobileNetV3-Large + FPN (256 channels, two stride-16/32 levels + max-pool level)
    as ``fasterrcnn_mobilenet_v3_large_fpn`` makes it; ``trainable_layers`` in 0-6."""
    _check_trainable(trainable_layers, 6)
    return mobilenet_backbone(
        backbone_name="mobilenet_v3_large",
        weights=None,
        fpn=True,
        norm_layer=batchnorm(frozen=frozen_batchnorm, eps=batchnorm_eps),
        trainable_layers=trainable_layers,
    )


class TinyResNet(nn.Module):
    """A narrow ResNet-18-style trunk for the tiny detectors, trainable from scratch.

    ``stem`` (two stride-2 3x3 convs, to stride 4) then ``layer2``, ``layer3``,
    ``layer4`` of torchvision ``BasicBlock``s at strides 8, 16 and 32. The stride-4 stage
    of a ResNet is left out: at 320 px it would cost more than the rest together.

    Args:
        widths: channels of (stem conv 1, stem conv 2, layer2, layer3, layer4).
        blocks: BasicBlocks per stage (layer2, layer3, layer4).
        norm_layer: normalization after every conv.
    """

    def __init__(
        self,
        *,
        widths: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256),
        blocks: tuple[int, int, int] = (1, 1, 1),
        norm_layer: Callable[[int], nn.Module] = nn.BatchNorm2d,
    ) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            Conv2dNormActivation(3, widths[0], kernel_size=3, stride=2, norm_layer=norm_layer),
            Conv2dNormActivation(widths[0], widths[1], kernel_size=3, stride=2, norm_layer=norm_layer),
        )
        self.layer2 = _stage(widths[1], widths[2], blocks[0], norm_layer)
        self.layer3 = _stage(widths[2], widths[3], blocks[1], norm_layer)
        self.layer4 = _stage(widths[3], widths[4], blocks[2], norm_layer)
        self.stage_channels = tuple(widths[2:])
        # torchvision's ResNet initialization. Residual branches are not zero-initialized:
        # with one block per stage that would leave the network shallow early on, and
        # short CPU schedules learned (slightly) faster without it.
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.layer4(self.layer3(self.layer2(self.stem(x))))


def _stage(
    in_channels: int, out_channels: int, num_blocks: int, norm_layer: Callable[[int], nn.Module]
) -> nn.Sequential:
    downsample = nn.Sequential(conv1x1(in_channels, out_channels, stride=2), norm_layer(out_channels))
    layers = [BasicBlock(in_channels, out_channels, stride=2, downsample=downsample, norm_layer=norm_layer)]
    layers += [BasicBlock(out_channels, out_channels, norm_layer=norm_layer) for _ in range(num_blocks - 1)]
    return nn.Sequential(*layers)


def tiny_resnet_fpn(
    *,
    out_channels: int,
    extra_blocks: ExtraFPNBlock | None,
    widths: tuple[int, int, int, int, int] = (16, 32, 64, 128, 256),
    blocks: tuple[int, int, int] = (1, 1, 1),
) -> BackboneWithFPN:
    """``TinyResNet`` + FPN over its stride 8/16/32 stages (keys "0", "1", "2") plus
    ``extra_blocks`` (e.g. ``LastLevelP6P7`` for strides 64/128)."""
    trunk = TinyResNet(widths=widths, blocks=blocks)
    return BackboneWithFPN(
        trunk,
        return_layers={"layer2": "0", "layer3": "1", "layer4": "2"},
        in_channels_list=list(trunk.stage_channels),
        out_channels=out_channels,
        extra_blocks=extra_blocks,
    )
