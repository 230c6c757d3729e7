"""Single-launch Triton kernel of ``sdk::batched_nms``: the op's CUDA implementation and
the TensorRT plugin's ahead-of-time kernel (one kernel, no workspace).

Split of the work, the same in torch and in a TensorRT engine:

1. pre-NMS top-k (torch: a stable descending sort; the engine: a standard TopK layer in
   the graph, as EfficientNMS) keeps the M <= ``MAX_CANDIDATES`` best of the N * C
   flattened scores (index ``n * C + c``) and gathers their boxes and labels:
   ``cand_boxes`` float32 [B, M, 4] (x1, y1, x2, y2), ``cand_scores`` float32 [B, M]
   (descending), ``cand_labels`` int32 [B, M].
2. ``_nms_kernel``, grid ``(B,)``: one program per image holds the M candidates in
   registers, walks them in rank order and keeps one unless a kept box of the same class
   (any class if class-agnostic) overlaps it with IoU > ``IOU_THRESHOLD``; each keep
   clears the candidates it suppresses with one vector compare. It writes the contract
   outputs directly (``num_dets`` int32 [B, 1], ``boxes`` float32 [B, K, 4], ``scores``
   float32 [B, K], ``labels`` int32 [B, K], zero past ``num_dets``) and stops after
   K = ``MAX_DET`` keeps. Thresholds and K are compile-time constants (an AOT plugin
   passes only int32 scalars), so an engine compiles one variant for its attributes.

Semantics equal ``reference.batched_nms_reference`` with ``pre_nms_top_k`` capped at
``MAX_CANDIDATES`` (EfficientNMS's cap): IoUs use torchvision's formula in float32 with
IEEE division, and a 0/0 IoU (two empty boxes) never suppresses, as torchvision's NaN.
Runs on CPU tensors under ``TRITON_INTERPRET=1`` (tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .reference import check_nms_inputs

MAX_CANDIDATES = 4096


@triton.jit
def _nms_kernel(
    boxes_ptr,  # float32 [B, M, 4] candidates in rank order
    scores_ptr,  # float32 [B, M] descending
    labels_ptr,  # int32 [B, M]
    num_cand,  # int32 M
    num_dets_ptr,  # int32 [B, 1] output
    out_boxes_ptr,  # float32 [B, K, 4] output
    out_scores_ptr,  # float32 [B, K] output
    out_labels_ptr,  # int32 [B, K] output
    SCORE_THRESHOLD: tl.constexpr,
    IOU_THRESHOLD: tl.constexpr,
    MAX_DET: tl.constexpr,
    CLASS_AGNOSTIC: tl.constexpr,
    BLOCK: tl.constexpr,  # power of two >= M
    BLOCK_K: tl.constexpr,  # power of two >= MAX_DET
):
    image = tl.program_id(0).to(tl.int64)
    offs = tl.arange(0, BLOCK)
    in_range = offs < num_cand
    base = boxes_ptr + image * num_cand * 4
    x1 = tl.load(base + offs * 4 + 0, mask=in_range, other=0.0)
    y1 = tl.load(base + offs * 4 + 1, mask=in_range, other=0.0)
    x2 = tl.load(base + offs * 4 + 2, mask=in_range, other=0.0)
    y2 = tl.load(base + offs * 4 + 3, mask=in_range, other=0.0)
    area = (x2 - x1) * (y2 - y1)
    scores = tl.load(scores_ptr + image * num_cand + offs, mask=in_range, other=0.0)
    labels = tl.load(labels_ptr + image * num_cand + offs, mask=in_range, other=-1)
    # candidates are sorted, so the valid ones are a prefix; alive = not yet suppressed
    alive = in_range & (scores > SCORE_THRESHOLD)
    num_valid = tl.sum(alive.to(tl.int32), axis=0)
    count = 0
    i = 0
    while (i < num_valid) & (count < MAX_DET):
        if tl.sum(tl.where(offs == i, alive, False).to(tl.int32), axis=0) > 0:
            bx1 = tl.load(base + i * 4 + 0)
            by1 = tl.load(base + i * 4 + 1)
            bx2 = tl.load(base + i * 4 + 2)
            by2 = tl.load(base + i * 4 + 3)
            width = tl.maximum(tl.minimum(bx2, x2) - tl.maximum(bx1, x1), 0.0)
            height = tl.maximum(tl.minimum(by2, y2) - tl.maximum(by1, y1), 0.0)
            inter = width * height
            union = (bx2 - bx1) * (by2 - by1) + area - inter
            nonzero = union != 0.0  # 0/0 is NaN in torchvision: never above the threshold
            iou = tl.div_rn(inter, tl.where(nonzero, union, 1.0))
            hit = nonzero & (iou > IOU_THRESHOLD) & (offs > i)
            if not CLASS_AGNOSTIC:
                hit = hit & (labels == tl.load(labels_ptr + image * num_cand + i))
            alive = alive & ~hit
            row = image * MAX_DET + count
            tl.store(out_boxes_ptr + row * 4 + 0, bx1)
            tl.store(out_boxes_ptr + row * 4 + 1, by1)
            tl.store(out_boxes_ptr + row * 4 + 2, bx2)
            tl.store(out_boxes_ptr + row * 4 + 3, by2)
            tl.store(out_scores_ptr + row, tl.load(scores_ptr + image * num_cand + i))
            tl.store(out_labels_ptr + row, tl.load(labels_ptr + image * num_cand + i))
            count += 1
        i += 1
    tl.store(num_dets_ptr + image, count)
    # rows past num_dets are zero (TensorRT does not clear output buffers)
    rows = tl.arange(0, BLOCK_K)
    pad = (rows >= count) & (rows < MAX_DET)
    zero = tl.zeros([BLOCK_K], dtype=tl.float32)
    for c in tl.static_range(4):
        tl.store(out_boxes_ptr + (image * MAX_DET + rows) * 4 + c, zero, mask=pad)
    tl.store(out_scores_ptr + image * MAX_DET + rows, zero, mask=pad)
    tl.store(out_labels_ptr + image * MAX_DET + rows, zero.to(tl.int32), mask=pad)


def kernel_constants(
    score_threshold: float, iou_threshold: float, max_det: int, class_agnostic: bool, num_cand: int
) -> dict:
    """The kernel's compile-time constants for these attributes and M candidates."""
    return {
        "SCORE_THRESHOLD": float(score_threshold), "IOU_THRESHOLD": float(iou_threshold),
        "MAX_DET": int(max_det), "CLASS_AGNOSTIC": bool(class_agnostic),
        "BLOCK": triton.next_power_of_2(max(int(num_cand), 1)), "BLOCK_K": triton.next_power_of_2(int(max_det)),
    }


#: runtime arguments of ``_nms_kernel`` in order: inputs, int32 scalars, outputs (TensorRT's AOT convention)
SIGNATURE = {
    "boxes_ptr": "*fp32", "scores_ptr": "*fp32", "labels_ptr": "*i32", "num_cand": "i32",
    "num_dets_ptr": "*i32", "out_boxes_ptr": "*fp32", "out_scores_ptr": "*fp32", "out_labels_ptr": "*i32",
}


def num_warps(num_cand: int) -> int:
    """Warps per program: the candidate vectors spread over more threads as M grows."""
    return 8 if num_cand > 1024 else 4


def candidate_count(num: int, num_classes: int, pre_nms_top_k: int, cap: int = MAX_CANDIDATES) -> int:
    """M: the pre-NMS top-k the graph keeps (``pre_nms_top_k``, the N * C scores, the cap)."""
    total = int(num) * int(num_classes)
    return min(total, cap, pre_nms_top_k if pre_nms_top_k > 0 else total)


def top_candidates(boxes: Tensor, scores: Tensor, num_cand: int) -> tuple[Tensor, Tensor, Tensor]:
    """Step 1 in torch: (boxes float32 [B, M, 4], scores float32 [B, M], labels int32 [B, M])
    of the ``num_cand`` best flat scores, ties by lower ``n * C + c`` (a stable sort)."""
    batch, num, num_classes = scores.shape
    flat = scores.reshape(batch, num * num_classes).float()
    cand_scores, cand = torch.sort(flat, dim=1, descending=True, stable=True)
    cand_scores, cand = cand_scores[:, :num_cand].contiguous(), cand[:, :num_cand]
    if boxes.dim() == 4:  # one box per (n, c)
        table, rows = boxes.reshape(batch, num * num_classes, 4), cand
    else:
        table, rows = boxes, cand // num_classes
    cand_boxes = table.float().gather(1, rows[..., None].expand(-1, -1, 4)).contiguous()
    return cand_boxes, cand_scores, (cand % num_classes).to(torch.int32).contiguous()


def batched_nms_single_launch(
    boxes: Tensor,
    scores: Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_det: int,
    pre_nms_top_k: int = -1,
    class_agnostic: bool = False,
    *,
    cap: int = MAX_CANDIDATES,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Same contract as ``reference.batched_nms_reference`` with ``pre_nms_top_k`` capped at ``cap``."""
    check_nms_inputs(boxes, scores, max_det)
    batch, num, num_classes = scores.shape
    device = scores.device
    num_dets = torch.zeros((batch, 1), dtype=torch.int32, device=device)
    out_boxes = torch.zeros((batch, max_det, 4), dtype=torch.float32, device=device)
    out_scores = torch.zeros((batch, max_det), dtype=torch.float32, device=device)
    out_labels = torch.zeros((batch, max_det), dtype=torch.int32, device=device)
    num_cand = candidate_count(num, num_classes, pre_nms_top_k, cap)
    if batch == 0 or num_cand == 0:
        return num_dets, out_boxes, out_scores, out_labels
    cand_boxes, cand_scores, cand_labels = top_candidates(boxes, scores, num_cand)
    _nms_kernel[(batch,)](
        cand_boxes, cand_scores, cand_labels, num_cand, num_dets, out_boxes, out_scores, out_labels,
        **kernel_constants(score_threshold, iou_threshold, max_det, class_agnostic, num_cand),
        num_warps=num_warps(num_cand),
    )
    return num_dets, out_boxes, out_scores, out_labels


def compile_aot(
    *, arch: int, num_cand: int, score_threshold: float, iou_threshold: float, max_det: int,
    class_agnostic: bool = False,
):
    """``_nms_kernel`` for ``sm_<arch>`` as a TensorRT AOT plugin kernel
    (``sdk.trt_plugins._triton_aot.AotKernel``); no GPU needed. Launch: grid (B,), one
    int32 scalar (M), arguments in ``SIGNATURE`` order."""
    from .._triton_aot import aot_kernel

    constants = kernel_constants(score_threshold, iou_threshold, max_det, class_agnostic, num_cand)
    return aot_kernel(_nms_kernel, SIGNATURE, constants, arch=arch, num_warps=num_warps(num_cand))
