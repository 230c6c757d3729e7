"""Input checks shared by the detectors' ``forward``.

The SDK's detectors take one padded batch ``images`` float32 [B, 3, H, W] (already
normalized by ``sdk.preprocess``) instead of torchvision's list of raw images, so
every image of a batch has the size (H, W): anchors are laid out over, and boxes
clipped to, the whole network input.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchvision.models.detection.image_list import ImageList

from sdk.errors import InputError
from sdk.preprocess import Preprocess


def check_images(images: Tensor) -> None:
    """Raise ``InputError`` unless ``images`` is a float tensor [B, 3, H, W]."""
    if not isinstance(images, Tensor) or images.dim() != 4 or images.shape[1] != 3:
        shape = tuple(images.shape) if isinstance(images, Tensor) else type(images).__name__
        raise InputError(f"detectors take a float tensor [B, 3, H, W]; got {shape}")
    if not images.is_floating_point():
        raise InputError(
            f"detectors take normalized float images, got dtype {images.dtype}; "
            "normalize with sdk.preprocess (Preprocess.normalize) first"
        )


def as_image_list(images: Tensor) -> ImageList:
    """Wrap a padded batch as torchvision's ``ImageList``: every image is (H, W)."""
    height, width = images.shape[-2:]
    return ImageList(images, [(int(height), int(width))] * images.shape[0])


def check_targets(targets: list[dict[str, Tensor]] | None, batch_size: int) -> list[dict[str, Tensor]]:
    """Validate training targets: one dict per image with ``boxes`` float [M, 4] xyxy
    (network-input pixels, x2 > x1, y2 > y1), ``labels`` int64 [M] and, for Mask R-CNN,
    ``masks`` uint8 [M, H, W] (one binary mask per box, network-input pixels)."""
    if targets is None:
        raise InputError("training mode needs targets: model(images, targets)")
    if len(targets) != batch_size:
        raise InputError(f"got {len(targets)} targets for {batch_size} images")
    for index, target in enumerate(targets):
        boxes, labels = target.get("boxes"), target.get("labels")
        if not isinstance(boxes, Tensor) or boxes.dim() != 2 or boxes.shape[-1] != 4 or not boxes.is_floating_point():
            raise InputError(f"targets[{index}]['boxes'] must be a float tensor [M, 4]")
        if not isinstance(labels, Tensor) or labels.dtype != torch.int64 or labels.shape != boxes.shape[:1]:
            raise InputError(f"targets[{index}]['labels'] must be an int64 tensor [M] matching boxes")
        masks = target.get("masks")
        if masks is not None and (not isinstance(masks, Tensor) or masks.dim() != 3 or masks.shape[0] != boxes.shape[0]):
            shape = tuple(masks.shape) if isinstance(masks, Tensor) else type(masks).__name__
            raise InputError(f"targets[{index}]['masks'] must be a tensor [M, H, W] matching boxes, got {shape}")
        degenerate = (boxes[:, 2:] <= boxes[:, :2]).any(dim=1)
        if degenerate.any():
            bad = boxes[degenerate][0].tolist()
            raise InputError(f"targets[{index}] has a box without positive width and height: {bad}")
    return targets


class ImageNormalizer(torch.nn.Module):
    """uint8 (or 0-255 float) images [B, 3, H, W] -> float32 ``(x.float() - mean) / std``.

    ``Preprocess.normalize`` on the torch side, written once: the trainer, the eager
    torch backend and every DeployModule graph (``InputNormalizer``) call it, so eager,
    training and export normalize identically. ``mean``/``std`` are RGB, 0-255 scale,
    float32 buffers [1, 3, 1, 1].
    """

    def __init__(self, preprocess: Preprocess) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(preprocess.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(preprocess.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: Tensor) -> Tensor:
        return (images.float() - self.mean) / self.std
