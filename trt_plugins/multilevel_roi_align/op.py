"""The ``sdk::multilevel_roi_align`` PyTorch custom op.

CPU (and any device without a dedicated kernel): the torchvision reference.
CUDA: the Triton kernel (``triton_kernel.py``), imported on first CUDA call.
The fake kernel gives ``torch.export`` / ONNX export static output shapes.
Importing this module registers the op once; re-imports are no-ops. No autograd
(deployment only).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .reference import check_roi_align_inputs, multilevel_roi_align_reference

QUALNAME = "sdk::multilevel_roi_align"


def _cuda_kernel(
    rois, features, output_size, sampling_ratio, aligned, spatial_scales, canonical_scale, canonical_level
):
    from .triton_kernel import multilevel_roi_align_triton  # lazy: keeps triton off the CPU path

    return multilevel_roi_align_triton(
        rois, features, output_size, sampling_ratio, aligned, spatial_scales, canonical_scale, canonical_level
    )


def _fake(rois, features, output_size, sampling_ratio, aligned, spatial_scales, canonical_scale=224, canonical_level=4):
    check_roi_align_inputs(rois, features, output_size, spatial_scales)
    batch, num_rois = rois.shape[:2]
    return features[0].new_empty((batch, num_rois, features[0].shape[1], *output_size))


def _register() -> None:
    if hasattr(torch.ops.sdk, "multilevel_roi_align"):
        return

    @torch.library.custom_op(QUALNAME, mutates_args=())
    def multilevel_roi_align(
        rois: Tensor,
        features: list[Tensor],
        output_size: list[int],
        sampling_ratio: int,
        aligned: bool,
        spatial_scales: list[float],
        canonical_scale: int = 224,
        canonical_level: int = 4,
    ) -> Tensor:
        return multilevel_roi_align_reference(
            rois, features, output_size, sampling_ratio, aligned, spatial_scales, canonical_scale, canonical_level
        )

    multilevel_roi_align.register_fake(_fake)
    torch.library.register_kernel(QUALNAME, "cuda", _cuda_kernel)


_register()

#: ``torch.ops.sdk.multilevel_roi_align`` (see ``reference.multilevel_roi_align_reference``).
multilevel_roi_align = torch.ops.sdk.multilevel_roi_align
