"""The ``sdk::batched_nms`` PyTorch custom op.

CPU (and any device without a dedicated kernel): the torchvision reference.
CUDA: the single-launch Triton kernel (``single_launch.py``, the same kernel the TensorRT
plugin compiles into engines; pre-NMS top-k capped at 4096 as there), imported on first
CUDA call.
The fake kernel gives ``torch.export`` / ONNX export static output shapes.
Importing this module registers the op once; re-imports are no-ops.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .reference import batched_nms_reference, check_nms_inputs

QUALNAME = "sdk::batched_nms"


def _cuda_kernel(boxes, scores, score_threshold, iou_threshold, max_det, pre_nms_top_k, class_agnostic):
    from .single_launch import batched_nms_single_launch  # lazy: keeps triton off the CPU path

    return batched_nms_single_launch(
        boxes, scores, score_threshold, iou_threshold, max_det, pre_nms_top_k, class_agnostic
    )


def _fake(boxes, scores, score_threshold, iou_threshold, max_det, pre_nms_top_k=-1, class_agnostic=False):
    check_nms_inputs(boxes, scores, max_det)
    batch = scores.shape[0]
    return (
        scores.new_empty((batch, 1), dtype=torch.int32),
        scores.new_empty((batch, max_det, 4), dtype=torch.float32),
        scores.new_empty((batch, max_det), dtype=torch.float32),
        scores.new_empty((batch, max_det), dtype=torch.int32),
    )


def _register() -> None:
    if hasattr(torch.ops.sdk, "batched_nms"):
        return

    @torch.library.custom_op(QUALNAME, mutates_args=())
    def batched_nms(
        boxes: Tensor,
        scores: Tensor,
        score_threshold: float,
        iou_threshold: float,
        max_det: int,
        pre_nms_top_k: int = -1,
        class_agnostic: bool = False,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        return batched_nms_reference(
            boxes, scores, score_threshold, iou_threshold, max_det, pre_nms_top_k, class_agnostic
        )

    batched_nms.register_fake(_fake)
    torch.library.register_kernel(QUALNAME, "cuda", _cuda_kernel)


_register()

#: ``torch.ops.sdk.batched_nms`` (see ``reference.batched_nms_reference`` for the contract).
batched_nms = torch.ops.sdk.batched_nms
