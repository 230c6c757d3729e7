"""Helpers for comparing ``sdk.models`` with torchvision's detectors on identical inputs."""

from __future__ import annotations

import re

import torch
import torchvision
from torch import nn
from torchvision.models.detection.transform import GeneralizedRCNNTransform

import sdk.models


def torchvision_reference(name: str, *, num_classes: int, **kwargs) -> nn.Module:
    """torchvision's detection builder ``name`` with random weights (no downloads)."""
    builder = getattr(torchvision.models.detection, name)
    return builder(weights=None, weights_backbone=None, num_classes=num_classes, **kwargs)


def run_torchvision(model: nn.Module, images: torch.Tensor, targets: list[dict] | None = None):
    """Run a torchvision detector on an already normalized batch, unchanged.

    Its ``GeneralizedRCNNTransform`` is replaced by one that leaves the images as they
    are: scale factor 1 (min/max size = the input's sides), mean 0, std 1, and no
    padding (sides must be multiples of 32). Boxes then come back in input pixels.
    """
    height, width = images.shape[-2:]
    assert height % 32 == 0 and width % 32 == 0, "torchvision would pad other sizes"
    model.transform = GeneralizedRCNNTransform(
        min_size=min(height, width), max_size=max(height, width), image_mean=[0.0] * 3, image_std=[1.0] * 3
    )
    return model(list(images), targets)


_CLASS_LAYER = re.compile(r"(cls_logits|cls_score|bbox_ctrness|classification_head\.module_list\.\d+\.1)$")
_BOX_LAYER = re.compile(r"(bbox_reg|bbox_pred|regression_head\.module_list\.\d+\.1)$")


def randomize_(model: nn.Module, images: torch.Tensor, *, seed: int) -> nn.Module:
    """Give a freshly initialized detector informative random weights, in place.

    Out of the box, torchvision's random detectors output near-constant scores (heads
    initialized for a 1 % prior) or saturated ones (un-normalized R50 features), which
    would make a comparison meaningless. Here BatchNorm affine parameters are drawn away
    from the identity, backbone BatchNorm statistics are set from ``images`` (as after
    training), and each prediction layer is rescaled so its outputs on ``images`` have a
    useful spread: class logits std 1.5 around -1, box deltas std 0.3.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.weight.shape, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(module.bias.shape, generator=generator) * 0.4 - 0.2)
        norms = [m for m in model.backbone.modules() if isinstance(m, nn.BatchNorm2d)]
        for norm in norms:
            norm.momentum = 1.0  # running statistics := this batch's
        model.backbone.train()(images)
        for norm in norms:
            norm.momentum = 0.1
        model.eval()
        # A two-stage model's RoI inputs depend on the RPN's outputs: rescale it twice.
        for _ in range(2 if hasattr(model, "rpn") else 1):
            _rescale_prediction_layers(model, images)
    return model


def _rescale_prediction_layers(model: nn.Module, images: torch.Tensor) -> None:
    outputs: dict[str, list[torch.Tensor]] = {}
    layers = {
        name: module
        for name, module in model.named_modules()
        if isinstance(module, (nn.Conv2d, nn.Linear)) and (_CLASS_LAYER.search(name) or _BOX_LAYER.search(name))
    }
    hooks = [
        module.register_forward_hook(lambda m, i, o, name=name: outputs.setdefault(name, []).append(o.flatten()))
        for name, module in layers.items()
    ]
    with torch.no_grad():
        for module in layers.values():
            module.bias.zero_()
        run_torchvision(model, images)
        for hook in hooks:
            hook.remove()
        for name, module in layers.items():
            std = torch.cat(outputs[name]).std().clamp_min(1e-12)
            is_class = bool(_CLASS_LAYER.search(name))
            module.weight.mul_((1.5 if is_class else 0.3) / std)
            module.bias.fill_(-1.0 if is_class else 0.0)


def assert_same_detections(ours: list[dict], theirs: list[dict], *, min_dets: int) -> None:
    """Equal boxes, scores and labels per image (tight float tolerance), and at least
    ``min_dets`` detections per image so the comparison cannot pass vacuously."""
    assert len(ours) == len(theirs)
    for mine, ref in zip(ours, theirs):
        assert ref["boxes"].shape[0] >= min_dets, f"reference has only {ref['boxes'].shape[0]} detections"
        assert mine["boxes"].shape == ref["boxes"].shape
        torch.testing.assert_close(mine["labels"], ref["labels"], rtol=0, atol=0)
        torch.testing.assert_close(mine["scores"], ref["scores"], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(mine["boxes"], ref["boxes"], rtol=1e-5, atol=1e-3)


def assert_same_masks(ours: list[dict], theirs: list[dict]) -> None:
    """Equal ``masks`` [N, 1, M, M] per image: the box-relative mask probabilities of
    torchvision's ``RoIHeads`` (``run_torchvision``'s pass-through transform is left in
    training mode, so torchvision skips ``paste_masks_in_image``; pasting is tested on
    its own in tests/test_masks.py)."""
    for mine, ref in zip(ours, theirs):
        assert ref["masks"].dim() == 4 and ref["masks"].shape[1] == 1, "torchvision pasted its masks"
        assert float(ref["masks"].std()) > 0.05, "reference masks are near constant"
        torch.testing.assert_close(mine["masks"], ref["masks"], rtol=1e-4, atol=1e-5)


def build_ours_from(reference: nn.Module, name: str, *, num_classes: int, **overrides) -> nn.Module:
    """Our model ``name`` with the reference's weights loaded strictly."""
    model = sdk.models.build_model(name, num_classes=num_classes, **overrides)
    model.load_state_dict(reference.state_dict(), strict=True)
    return model
