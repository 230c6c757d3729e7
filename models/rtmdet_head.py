"""RTMDet's detection head: convolutions shared by all levels, BatchNorm per level.

For each pyramid level, ``num_convs`` 3x3 conv -> BatchNorm -> SiLU layers in a
classification and a regression branch, then a 1x1 class conv and a 1x1 box conv per
level. The 3x3 conv weights are one set shared by every level (stored once); each level
has its own BatchNorm, since feature statistics differ between levels (the paper's
"shared convolution, separate BN"). Box outputs are the (l, t, r, b) distances in units
of the level's stride, through ``exp`` (RTMDet's ``exp_on_reg`` option), so they are
positive and ``BoxLinearCoder(normalize_by_size=True)`` decodes them against the
stride-sized square of each location.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from sdk.models.cspnext import batchnorm


class RTMDetHead(nn.Module):
    """features: L maps [B, C_in, H_l, W_l] -> ``{"cls_logits": [B, N, K],
    "bbox_regression": [B, N, 4]}`` with N = sum_l H_l*W_l (location-major per level,
    levels in order), K = ``num_classes``, boxes as positive (l, t, r, b) / stride.

    Args:
        in_channels: channels of every input level.
        feat_channels: channels of the branch convolutions.
        num_classes: class columns (the SDK's convention: column 0 is background and is
            never a positive).
        num_levels: pyramid levels (one BatchNorm set and one pair of 1x1 output convs each).
        num_convs: 3x3 layers per branch.
        prior_prob: initial foreground probability of the class outputs.
    """

    def __init__(
        self,
        *,
        in_channels: int,
        feat_channels: int,
        num_classes: int,
        num_levels: int,
        num_convs: int = 2,
        prior_prob: float = 0.01,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        channels = [in_channels] + [feat_channels] * num_convs
        self.cls_convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(channels, channels[1:]))
        self.reg_convs = nn.ModuleList(nn.Conv2d(a, b, 3, padding=1, bias=False) for a, b in zip(channels, channels[1:]))
        self.cls_norms = nn.ModuleList(nn.ModuleList(batchnorm(feat_channels) for _ in range(num_convs)) for _ in range(num_levels))
        self.reg_norms = nn.ModuleList(nn.ModuleList(batchnorm(feat_channels) for _ in range(num_convs)) for _ in range(num_levels))
        self.rtm_cls = nn.ModuleList(nn.Conv2d(feat_channels, num_classes, 1) for _ in range(num_levels))
        self.rtm_reg = nn.ModuleList(nn.Conv2d(feat_channels, 4, 1) for _ in range(num_levels))
        for conv in [*self.cls_convs, *self.reg_convs, *self.rtm_cls, *self.rtm_reg]:
            nn.init.normal_(conv.weight, std=0.01)
        for conv in self.rtm_cls:
            nn.init.constant_(conv.bias, -math.log((1 - prior_prob) / prior_prob))
        for conv in self.rtm_reg:
            nn.init.zeros_(conv.bias)

    @staticmethod
    def _branch(x: Tensor, convs: nn.ModuleList, norms: nn.ModuleList) -> Tensor:
        for conv, norm in zip(convs, norms):
            x = F.silu(norm(conv(x)))
        return x

    def forward(self, features: list[Tensor]) -> dict[str, Tensor]:
        cls_out, reg_out = [], []
        for level, x in enumerate(features):
            cls = self.rtm_cls[level](self._branch(x, self.cls_convs, self.cls_norms[level]))
            reg = self.rtm_reg[level](self._branch(x, self.reg_convs, self.reg_norms[level])).exp()
            cls_out.append(cls.flatten(2).transpose(1, 2))  # [B, H*W, K]
            reg_out.append(reg.flatten(2).transpose(1, 2))  # [B, H*W, 4]
        return {"cls_logits": torch.cat(cls_out, dim=1), "bbox_regression": torch.cat(reg_out, dim=1)}
