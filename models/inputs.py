"""Input checks shared by the detectors' ``forward``.

The SDK's detectors take one padded batch ``images`` float32 [B, 3, H, W] (already
normalized by ``sdk.preprocess``) instead of torchvision's list of raw images:
anchors are laid out over the whole network input, and boxes clipped to it, unless
``image_sizes`` int64 [B, 2] gives each image's content (h, w) at the top left; then,
as torchvision does, the padding is zeroed and boxes clip to each image's content.
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


def as_image_list(images: Tensor, image_sizes: Tensor | None = None) -> ImageList:
    """Wrap a padded batch as torchvision's ``ImageList``: every image is (H, W), or,
    with ``image_sizes`` int [B, 2], image i's content is its top-left
    ``image_sizes[i]`` = (h, w) and the rest is batch padding (torchvision's batching)."""
    if image_sizes is None:
        height, width = images.shape[-2:]
        return ImageList(images, [(int(height), int(width))] * images.shape[0])
    return ImageList(images, [(int(h), int(w)) for h, w in image_sizes.tolist()])


def zero_padding(images: Tensor, image_sizes: Tensor) -> Tensor:
    """``images`` [B, C, H, W] (normalized) with every pixel outside image i's top-left
    ``image_sizes[i]`` = (h, w) set to 0: the padding torchvision's ``batch_images``
    adds after normalizing, whatever colour the uint8 input was padded with. Traceable
    (a dynamic-shape graph's ``image_sizes`` input)."""
    rows = torch.arange(images.shape[-2], device=images.device).view(1, -1, 1)
    cols = torch.arange(images.shape[-1], device=images.device).view(1, 1, -1)
    inside = (rows < image_sizes[:, 0].view(-1, 1, 1)) & (cols < image_sizes[:, 1].view(-1, 1, 1))
    return torch.where(inside.unsqueeze(1), images, torch.zeros_like(images))


def clip_sizes(images: Tensor, image_sizes: Tensor | None) -> list[tuple[int, int]]:
    """Per image, the (h, w) its boxes are clipped to: ``image_sizes`` or the input's (H, W)."""
    if image_sizes is None:
        return [(int(images.shape[-2]), int(images.shape[-1]))] * images.shape[0]
    return [(int(h), int(w)) for h, w in image_sizes.tolist()]


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
