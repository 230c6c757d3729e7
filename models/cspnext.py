"""CSPNeXt backbone and CSPNeXt-PAFPN neck of RTMDet (Lyu et al., "RTMDet: An Empirical
Study of Designing Real-Time Object Detectors", 2022), from torchvision's
``Conv2dNormActivation`` and PyTorch layers.

Every convolution is conv -> BatchNorm (eps 1e-3, momentum 0.03, RTMDet's) -> SiLU.
The sizes follow the paper's P5 architecture scaled by ``widen_factor`` (channels) and
``deepen_factor`` (blocks per stage): RTMDet-tiny is (0.375, 0.167), RTMDet-s (0.5, 0.33).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torchvision.ops.misc import Conv2dNormActivation

# (in, out, blocks, add_identity, use_spp) per stage at widen = deepen = 1 (the paper's P5 arch)
_P5_ARCH = ((64, 128, 3, True, False), (128, 256, 6, True, False), (256, 512, 6, True, False), (512, 1024, 3, False, True))

batchnorm = partial(nn.BatchNorm2d, eps=1e-3, momentum=0.03)


def conv_bn_act(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, groups: int = 1) -> nn.Module:
    """Conv (no bias, 'same' padding) -> BatchNorm -> SiLU."""
    return Conv2dNormActivation(
        in_channels, out_channels, kernel_size, stride, groups=groups, norm_layer=batchnorm, activation_layer=nn.SiLU
    )


class CSPNeXtBlock(nn.Module):
    """3x3 conv, then a 5x5 depthwise-separable conv; residual when shapes allow."""

    def __init__(self, channels: int, *, add_identity: bool) -> None:
        super().__init__()
        self.conv1 = conv_bn_act(channels, channels, 3)
        self.conv2 = nn.Sequential(
            conv_bn_act(channels, channels, 5, groups=channels),  # depthwise
            conv_bn_act(channels, channels, 1),  # pointwise
        )
        self.add_identity = add_identity

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ChannelAttention(nn.Module):
    """Squeeze-excitation without reduction: ``x * hardsigmoid(fc(avgpool(x)))``."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Conv2d(channels, channels, 1)
        self.act = nn.Hardsigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.act(self.fc(F.adaptive_avg_pool2d(x, 1)))


class CSPLayer(nn.Module):
    """Cross-stage-partial layer: two 1x1 branches (one through ``num_blocks``
    CSPNeXt blocks), concatenated, channel attention, 1x1 fusion."""

    def __init__(
        self, in_channels: int, out_channels: int, *, num_blocks: int, add_identity: bool, channel_attention: bool
    ) -> None:
        super().__init__()
        mid = out_channels // 2
        self.main_conv = conv_bn_act(in_channels, mid)
        self.short_conv = conv_bn_act(in_channels, mid)
        self.blocks = nn.Sequential(*[CSPNeXtBlock(mid, add_identity=add_identity) for _ in range(num_blocks)])
        self.attention = ChannelAttention(2 * mid) if channel_attention else nn.Identity()
        self.final_conv = conv_bn_act(2 * mid, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        out = torch.cat([self.blocks(self.main_conv(x)), self.short_conv(x)], dim=1)
        return self.final_conv(self.attention(out))


class SPPF(nn.Module):
    """Spatial pyramid pooling (max-pools of 5, 9 and 13 px, stride 1) between 1x1 convs."""

    def __init__(self, in_channels: int, out_channels: int, kernel_sizes: tuple[int, ...] = (5, 9, 13)) -> None:
        super().__init__()
        mid = in_channels // 2
        self.conv1 = conv_bn_act(in_channels, mid)
        self.pools = nn.ModuleList(nn.MaxPool2d(k, stride=1, padding=k // 2) for k in kernel_sizes)
        self.conv2 = conv_bn_act(mid * (len(kernel_sizes) + 1), out_channels)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv1(x)
        return self.conv2(torch.cat([x, *(pool(x) for pool in self.pools)], dim=1))


class CSPNeXt(nn.Module):
    """images [B, 3, H, W] -> [C3, C4, C5] feature maps at strides 8, 16, 32 with
    ``out_channels`` channels (``stage_channels[1:]``)."""

    def __init__(self, *, widen_factor: float, deepen_factor: float) -> None:
        super().__init__()
        stem = int(_P5_ARCH[0][0] * widen_factor)
        self.stem = nn.Sequential(
            conv_bn_act(3, stem // 2, 3, stride=2), conv_bn_act(stem // 2, stem // 2, 3), conv_bn_act(stem // 2, stem, 3)
        )
        self.stages = nn.ModuleList()
        for in_ch, out_ch, blocks, add_identity, use_spp in _P5_ARCH:
            in_ch, out_ch = int(in_ch * widen_factor), int(out_ch * widen_factor)
            layers = [conv_bn_act(in_ch, out_ch, 3, stride=2)]
            if use_spp:
                layers.append(SPPF(out_ch, out_ch))
            num_blocks = max(round(blocks * deepen_factor), 1)
            layers.append(CSPLayer(out_ch, out_ch, num_blocks=num_blocks, add_identity=add_identity, channel_attention=True))
            self.stages.append(nn.Sequential(*layers))
        self.out_channels = [int(arch[1] * widen_factor) for arch in _P5_ARCH[1:]]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.stem(x)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index >= 1:
                outs.append(x)
        return outs


class CSPNeXtPAFPN(nn.Module):
    """Path-aggregation FPN: top-down then bottom-up CSP layers over [C3, C4, C5], then a
    3x3 conv per level to ``out_channels``: -> [P3, P4, P5]."""

    def __init__(self, in_channels: list[int], out_channels: int, *, num_blocks: int) -> None:
        super().__init__()
        csp = partial(CSPLayer, num_blocks=num_blocks, add_identity=False, channel_attention=False)
        levels = len(in_channels)
        # top-down, from the coarsest level
        self.reduce_layers = nn.ModuleList(conv_bn_act(in_channels[i], in_channels[i - 1]) for i in range(levels - 1, 0, -1))
        self.top_down_blocks = nn.ModuleList(csp(2 * in_channels[i - 1], in_channels[i - 1]) for i in range(levels - 1, 0, -1))
        # bottom-up, from the finest level
        self.downsamples = nn.ModuleList(conv_bn_act(in_channels[i], in_channels[i], 3, stride=2) for i in range(levels - 1))
        self.bottom_up_blocks = nn.ModuleList(csp(2 * in_channels[i], in_channels[i + 1]) for i in range(levels - 1))
        self.out_convs = nn.ModuleList(conv_bn_act(c, out_channels, 3) for c in in_channels)

    def forward(self, inputs: list[Tensor]) -> list[Tensor]:
        inner = [inputs[-1]]
        for step, low in enumerate(reversed(inputs[:-1])):
            high = self.reduce_layers[step](inner[0])
            inner[0] = high
            up = F.interpolate(high, size=low.shape[-2:], mode="nearest")
            inner.insert(0, self.top_down_blocks[step](torch.cat([up, low], dim=1)))
        outs = [inner[0]]
        for step, high in enumerate(inner[1:]):
            outs.append(self.bottom_up_blocks[step](torch.cat([self.downsamples[step](outs[-1]), high], dim=1)))
        return [conv(x) for conv, x in zip(self.out_convs, outs)]


class CSPNeXtWithPAFPN(nn.Module):
    """Backbone + neck as the SDK's detectors expect one: images [B, 3, H, W] ->
    ``OrderedDict`` {"p3", "p4", "p5"} of [B, out_channels, H/s, W/s], s = 8, 16, 32."""

    def __init__(self, *, body: CSPNeXt, neck: CSPNeXtPAFPN, out_channels: int) -> None:
        super().__init__()
        self.body = body
        self.neck = neck
        self.out_channels = out_channels
        self.strides = (8, 16, 32)

    def forward(self, images: Tensor) -> "OrderedDict[str, Tensor]":
        return OrderedDict(zip(("p3", "p4", "p5"), self.neck(self.body(images))))
