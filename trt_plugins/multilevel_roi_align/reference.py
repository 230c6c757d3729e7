"""Reference implementation of ``sdk::multilevel_roi_align`` on torchvision ops.

Equal to ``torchvision.ops.MultiScaleRoIAlign`` (which always uses ``aligned=False``)
with the spatial scales given instead of inferred, plus the ``aligned`` switch of
``torchvision.ops.roi_align``. Works on CPU and CUDA tensors.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor
from torchvision.ops import roi_align
from torchvision.ops.poolers import initLevelMapper


def level_range(spatial_scales: Sequence[float]) -> tuple[int, int]:
    """FPN levels ``(k_min, k_max)`` of the first and last feature map.

    Level ``k`` has stride ``2**k`` (scale ``2**-k``), as torchvision's ``_setup_scales``
    infers them; the scales must be powers of two in increasing-stride order.
    """
    levels = [-math.log2(s) for s in spatial_scales]
    for scale, level in zip(spatial_scales, levels):
        if scale <= 0 or abs(level - round(level)) > 1e-6:
            raise ValueError(f"spatial_scales must be powers of two (1/stride), got {list(spatial_scales)}")
    if any(b != a + 1 for a, b in zip(levels, levels[1:])):
        raise ValueError(
            f"spatial_scales must halve from one feature map to the next (consecutive FPN "
            f"levels), got {list(spatial_scales)}"
        )
    return round(levels[0]), round(levels[-1])


def check_roi_align_inputs(
    rois: Tensor, features: Sequence[Tensor], output_size: Sequence[int], spatial_scales: Sequence[float]
) -> None:
    """Raise ``ValueError`` unless the inputs have the shapes the op accepts."""
    if rois.dim() != 3 or rois.shape[-1] != 4:
        raise ValueError(f"rois must be [B, R, 4], got shape {tuple(rois.shape)}")
    if len(features) == 0 or len(features) != len(spatial_scales):
        raise ValueError(
            f"need one spatial scale per feature map, got {len(features)} feature maps and "
            f"spatial_scales={list(spatial_scales)}"
        )
    batch, channels = rois.shape[0], features[0].shape[1]
    for i, feature in enumerate(features):
        if feature.dim() != 4 or feature.shape[0] != batch or feature.shape[1] != channels:
            raise ValueError(
                f"features[{i}] must be [B={batch}, C={channels}, H, W], got shape {tuple(feature.shape)}"
            )
    if len(output_size) != 2 or min(output_size) < 1:
        raise ValueError(f"output_size must be (oh, ow) >= 1, got {list(output_size)}")
    level_range(spatial_scales)


def assign_levels(
    rois: Tensor, spatial_scales: Sequence[float], canonical_scale: int = 224, canonical_level: int = 4
) -> Tensor:
    """Index into ``features`` for each RoI: torchvision's ``LevelMapper`` (FPN paper eq. 1).

    ``floor(canonical_level + log2(sqrt(area) / canonical_scale) + 1e-6)`` clamped to the
    available levels, minus the first level. rois [..., 4] -> int64 [...].
    """
    k_min, k_max = level_range(spatial_scales)
    mapper = initLevelMapper(k_min, k_max, canonical_scale=canonical_scale, canonical_level=canonical_level)
    return mapper([rois.reshape(-1, 4)]).reshape(rois.shape[:-1])


def multilevel_roi_align_reference(
    rois: Tensor,
    features: Sequence[Tensor],
    output_size: Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    spatial_scales: Sequence[float],
    canonical_scale: int = 224,
    canonical_level: int = 4,
) -> Tensor:
    """RoIAlign of each RoI on the FPN level its size maps to.

    Args:
        rois (Tensor[B, R, 4]): ``(x1, y1, x2, y2)`` in input-image pixels, ``x1 <= x2``,
            ``y1 <= y2``; RoI ``r`` of image ``b`` pools from image ``b``'s features.
        features (list[Tensor[B, C, H_l, W_l]]): feature maps, finest first.
        output_size ((int, int)): ``(oh, ow)``.
        sampling_ratio (int): bilinear samples per bin side; ``<= 0`` = adaptive
            (``ceil(roi_size / output_size)``).
        aligned (bool): shift the box by -0.5 pixel (``torchvision.ops.roi_align``).
        spatial_scales (list[float]): ``1 / stride`` of each feature map, powers of two,
            halving from one map to the next.
        canonical_scale (int), canonical_level (int): the level mapper's constants.

    Returns:
        Tensor[B, R, C, oh, ow] in the features' dtype (computed in float32 for
        half-precision inputs).
    """
    check_roi_align_inputs(rois, features, output_size, spatial_scales)
    batch, num_rois = rois.shape[:2]
    dtype = features[0].dtype
    compute_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    levels = assign_levels(rois, spatial_scales, canonical_scale, canonical_level).reshape(-1)
    batch_idx = torch.arange(batch, device=rois.device).repeat_interleave(num_rois)
    flat_rois = torch.cat([batch_idx[:, None].to(compute_dtype), rois.reshape(-1, 4).to(compute_dtype)], dim=1)
    channels = features[0].shape[1]
    out = flat_rois.new_zeros((batch * num_rois, channels, *output_size))
    for level, (feature, scale) in enumerate(zip(features, spatial_scales)):
        idx = torch.where(levels == level)[0]
        out[idx] = roi_align(
            feature.to(compute_dtype),
            flat_rois[idx],
            output_size=tuple(output_size),
            spatial_scale=scale,
            sampling_ratio=sampling_ratio,
            aligned=aligned,
        )
    return out.reshape(batch, num_rois, channels, *output_size).to(dtype)
