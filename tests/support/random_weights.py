"""Informative random weights for untrained detectors (no downloads, nothing trained).

Out of the box a random detector outputs near-constant scores (heads initialized for a
1 % prior), saturated ones (un-normalized R50 features) or ~1e-20 features (SSDlite's
normal init), so every score ties and a comparison would pass vacuously. Here BatchNorm
affine parameters are drawn away from the identity, backbone BatchNorm statistics are
set from a sample batch (as after training), and each prediction layer is rescaled so
its outputs on that batch have a chosen spread (class logits ``class_std`` around
``class_bias``, box deltas std 0.3).
"""

from __future__ import annotations

import re
from typing import Any, Callable

import torch
from torch import nn

CLASS_LAYER = re.compile(r"(cls_logits|cls_score|bbox_ctrness|classification_head\.module_list\.\d+\.1|rtm_cls\.\d+)$")
BOX_LAYER = re.compile(r"(bbox_reg|bbox_pred|regression_head\.module_list\.\d+\.1|rtm_reg\.\d+)$")
BOX_STD = 0.3


def informative_weights_(
    model: nn.Module,
    images: torch.Tensor,
    *,
    generator: torch.Generator,
    class_std: float,
    class_bias: float,
    forward: Callable[[nn.Module, torch.Tensor], Any] | None = None,
    calibrate_head: bool = False,
) -> nn.Module:
    """Make ``model``'s random weights informative, in place; returns it in eval mode.

    ``images`` float32 [B, 3, H, W] as the model takes them (normalized); ``forward``
    runs the model on them (default ``model(images)``); ``generator`` draws the
    BatchNorm parameters; ``calibrate_head``: the head's BatchNorm statistics too (RTMDet:
    BatchNorm after near-zero-initialized convolutions).
    """
    calibrate_batchnorm_(model, images, generator, head=calibrate_head)
    model.eval()
    for _ in range(2 if hasattr(model, "rpn") else 1):  # a two-stage model's RoI inputs depend on the RPN
        _rescale_prediction_layers(model, images, forward or (lambda m, x: m(x)), class_std, class_bias)
    return model


def calibrate_batchnorm_(model: nn.Module, images: torch.Tensor, generator: torch.Generator, *, head: bool = False) -> None:
    """Random BatchNorm affine parameters (weight in [0.5, 1.5), bias in [-0.2, 0.2)) and
    the backbone's running statistics taken from ``images`` (``head``: and the head's,
    on the backbone's features; a head taking the list of feature maps)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(module.bias.shape, generator=generator) * 0.4 - 0.2)
        calibrated = [model.backbone, model.head] if head else [model.backbone]
        norms = [m for part in calibrated for m in part.modules() if isinstance(m, nn.BatchNorm2d)]
        momenta = [norm.momentum for norm in norms]
        for norm in norms:
            norm.momentum = 1.0  # running statistics := this batch's
        features = model.backbone.train()(images)
        if head:
            model.head.train()(list(features.values()))
        for norm, momentum in zip(norms, momenta):
            norm.momentum = momentum


def _rescale_prediction_layers(model: nn.Module, images: torch.Tensor, forward, class_std: float, class_bias: float) -> None:
    layers = {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and (CLASS_LAYER.search(name) or BOX_LAYER.search(name))
    }
    outputs: dict[str, list[torch.Tensor]] = {}
    hooks = [
        m.register_forward_hook(lambda mod, i, o, name=name: outputs.setdefault(name, []).append(o.flatten()))
        for name, m in layers.items()
    ]
    with torch.no_grad():
        for m in layers.values():
            m.bias.zero_()
        forward(model, images)
        for hook in hooks:
            hook.remove()
        for name, m in layers.items():
            is_class = bool(CLASS_LAYER.search(name))
            std = torch.cat(outputs[name]).std().clamp_min(1e-12)
            m.weight.mul_((class_std if is_class else BOX_STD) / std)
            m.bias.fill_(class_bias if is_class else 0.0)
