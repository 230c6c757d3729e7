"""Helpers for comparing ``sdk.models`` with torchvision's detectors on identical inputs."""

from __future__ import annotations

import torch
import torchvision
from torch import nn
from support.random_weights import informative_weights_
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


def randomize_(model: nn.Module, images: torch.Tensor, *, seed: int) -> nn.Module:
    """Give a freshly initialized torchvision-style detector informative random weights,
    in place (``support.random_weights``; class logits std 1.5 around -1), its
    prediction layers measured through ``run_torchvision``."""
    return informative_weights_(model, images, generator=torch.Generator().manual_seed(seed), class_std=1.5,
                                class_bias=-1.0, forward=run_torchvision)


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
