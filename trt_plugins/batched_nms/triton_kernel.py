"""Triton implementation of ``sdk::batched_nms`` (the op's CUDA kernel).

Pipeline for a whole batch, no per-image loop:

1. torch: scores below the threshold -> -inf, one stable descending sort per image
   (ties: lower flat index ``n * C + c`` first, as the reference), keep the first M
   candidates (``pre_nms_top_k``, trimmed to the most valid candidates of any image).
2. ``_iou_mask_kernel`` (grid ``(M / BLOCK_ROWS, M / 32, B)``): bit ``j`` of word
   ``mask[b, i, j // 32]`` is set when candidate ``j`` ranks below ``i``, has the same
   class (unless class-agnostic; compared directly, no coordinate offsets) and
   IoU(i, j) > iou_threshold. IoUs use torchvision's formula with IEEE division.
3. ``_greedy_kernel`` (grid ``(B,)``): walks candidates in rank order, keeps one when no
   kept candidate has suppressed it, ORs its mask row into the suppressed set, and
   stops after ``max_det`` keeps or at the last valid candidate.
4. torch: gather kept boxes / scores / labels into the fixed [B, K] outputs.

Memory: the mask is ``B * M * ceil(M / 32) * 4`` bytes (M = 4096: 2 MiB per image),
so set ``pre_nms_top_k`` for large candidate sets. Step 1 reads the largest valid
count back to the host (one sync) to size M.

Runs on CPU tensors under ``TRITON_INTERPRET=1`` (tests). ``benchmark`` times it
against the torchvision reference on a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from .._triton_aot import compile_for_cuda
from .reference import batched_nms_reference, check_nms_inputs

BLOCK_ROWS = 32
WORD_BITS = 32


@triton.jit
def _iou_mask_kernel(
    boxes_ptr,  # float32 [B, M, 4] candidate boxes, rank order
    labels_ptr,  # int32 [B, M]
    mask_ptr,  # int32 [B, M, W] output bit mask
    num_cand,
    num_words,
    iou_threshold,
    CLASS_AGNOSTIC: tl.constexpr,
    BLOCK: tl.constexpr,
):
    row_block, word, image = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    rows = row_block * BLOCK + tl.arange(0, BLOCK)
    bits = tl.arange(0, 32)
    cols = word * 32 + bits
    row_ok, col_ok = rows < num_cand, cols < num_cand
    base = boxes_ptr + image.to(tl.int64) * num_cand * 4
    rx1 = tl.load(base + rows * 4 + 0, mask=row_ok, other=0.0)
    ry1 = tl.load(base + rows * 4 + 1, mask=row_ok, other=0.0)
    rx2 = tl.load(base + rows * 4 + 2, mask=row_ok, other=0.0)
    ry2 = tl.load(base + rows * 4 + 3, mask=row_ok, other=0.0)
    cx1 = tl.load(base + cols * 4 + 0, mask=col_ok, other=0.0)
    cy1 = tl.load(base + cols * 4 + 1, mask=col_ok, other=0.0)
    cx2 = tl.load(base + cols * 4 + 2, mask=col_ok, other=0.0)
    cy2 = tl.load(base + cols * 4 + 3, mask=col_ok, other=0.0)
    width = tl.maximum(tl.minimum(rx2[:, None], cx2[None, :]) - tl.maximum(rx1[:, None], cx1[None, :]), 0.0)
    height = tl.maximum(tl.minimum(ry2[:, None], cy2[None, :]) - tl.maximum(ry1[:, None], cy1[None, :]), 0.0)
    inter = width * height
    union = ((rx2 - rx1) * (ry2 - ry1))[:, None] + ((cx2 - cx1) * (cy2 - cy1))[None, :] - inter
    # union == 0 (degenerate pairs): torchvision's 0/0 is NaN, never above the threshold
    nonzero = union != 0.0
    iou = tl.div_rn(inter, tl.where(nonzero, union, 1.0))
    hit = nonzero & (iou > iou_threshold) & (cols[None, :] > rows[:, None]) & col_ok[None, :]
    if not CLASS_AGNOSTIC:
        row_labels = tl.load(labels_ptr + image * num_cand + rows, mask=row_ok, other=-1)
        col_labels = tl.load(labels_ptr + image * num_cand + cols, mask=col_ok, other=-2)
        hit = hit & (row_labels[:, None] == col_labels[None, :])
    # distinct powers of two: their sum is their bitwise OR; int64 keeps bit 31 unsigned
    packed = tl.sum(tl.where(hit, tl.full([1, 32], 1, tl.int64) << bits[None, :].to(tl.int64), 0), axis=1).to(tl.int32)
    tl.store(mask_ptr + (image.to(tl.int64) * num_cand + rows) * num_words + word, packed, mask=row_ok)


@triton.jit
def _greedy_kernel(
    mask_ptr,  # int32 [B, M, W]
    num_valid_ptr,  # int32 [B] valid candidates per image (a prefix of the rank order)
    keep_ptr,  # int32 [B, K] output: kept candidate positions, best first
    count_ptr,  # int32 [B] output: number kept
    num_cand,
    num_words,
    max_det,
    BLOCK_WORDS: tl.constexpr,
):
    image = tl.program_id(0)
    words = tl.arange(0, BLOCK_WORDS)
    suppressed = tl.zeros([BLOCK_WORDS], dtype=tl.int32)
    num_valid = tl.load(num_valid_ptr + image)
    row_base = mask_ptr + image.to(tl.int64) * num_cand * num_words
    count = 0
    i = 0
    while (i < num_valid) & (count < max_det):
        word = tl.sum(tl.where(words == i // 32, suppressed, 0), axis=0)  # picks one word
        if ((word >> (i % 32)) & 1) == 0:
            row = tl.load(row_base + i * num_words + words, mask=words < num_words, other=0)
            suppressed = suppressed | row
            tl.store(keep_ptr + image * max_det + count, i)
            count += 1
        i += 1
    tl.store(count_ptr + image, count)


def batched_nms_triton(
    boxes: Tensor,
    scores: Tensor,
    score_threshold: float,
    iou_threshold: float,
    max_det: int,
    pre_nms_top_k: int = -1,
    class_agnostic: bool = False,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Same contract as ``reference.batched_nms_reference`` (shapes, dtypes, ranking)."""
    check_nms_inputs(boxes, scores, max_det)
    batch, num, num_classes = scores.shape
    total, device = num * num_classes, scores.device
    out_num = torch.zeros((batch, 1), dtype=torch.int32, device=device)
    out_boxes = torch.zeros((batch, max_det, 4), dtype=torch.float32, device=device)
    out_scores = torch.zeros((batch, max_det), dtype=torch.float32, device=device)
    out_labels = torch.zeros((batch, max_det), dtype=torch.int32, device=device)
    flat_scores = scores.reshape(batch, total).float()
    valid = flat_scores > score_threshold
    limit = min(pre_nms_top_k, total) if pre_nms_top_k > 0 else total
    num_valid = valid.sum(1).clamp(max=limit)
    num_cand = int(num_valid.max()) if batch else 0  # host sync: sizes the M x M mask
    if num_cand == 0:
        return out_num, out_boxes, out_scores, out_labels
    ranked = torch.where(valid, flat_scores, float("-inf"))
    cand_scores, cand = torch.sort(ranked, dim=1, descending=True, stable=True)
    cand_scores, cand = cand_scores[:, :num_cand].contiguous(), cand[:, :num_cand]
    labels = (cand % num_classes).to(torch.int32).contiguous()
    if boxes.dim() == 4:
        table, rows = boxes.reshape(batch, total, 4), cand
    else:
        table, rows = boxes, cand // num_classes
    cand_boxes = table.float().gather(1, rows[..., None].expand(-1, -1, 4)).contiguous()

    num_words = triton.cdiv(num_cand, WORD_BITS)
    mask = torch.empty((batch, num_cand, num_words), dtype=torch.int32, device=device)
    _iou_mask_kernel[(triton.cdiv(num_cand, BLOCK_ROWS), num_words, batch)](
        cand_boxes, labels, mask, num_cand, num_words, float(iou_threshold),
        CLASS_AGNOSTIC=bool(class_agnostic), BLOCK=BLOCK_ROWS,
    )
    keep = torch.zeros((batch, max_det), dtype=torch.int32, device=device)
    count = torch.empty((batch,), dtype=torch.int32, device=device)
    _greedy_kernel[(batch,)](
        mask, num_valid.to(torch.int32).contiguous(), keep, count, num_cand, num_words, max_det,
        BLOCK_WORDS=triton.next_power_of_2(num_words),
    )

    keep = keep.long()
    rows_ok = torch.arange(max_det, device=device)[None, :] < count[:, None]
    out_num[:, 0] = count
    out_boxes = torch.where(rows_ok[..., None], cand_boxes.gather(1, keep[..., None].expand(-1, -1, 4)), 0.0)
    out_scores = torch.where(rows_ok, cand_scores.gather(1, keep), 0.0)
    out_labels = torch.where(rows_ok, labels.gather(1, keep), 0)
    return out_num, out_boxes, out_scores, out_labels


def compile_kernels(*, arch: int = 90, block_words: int = 128) -> dict:
    """Compile both kernels ahead of time for an NVIDIA GPU (``sm_<arch>``); no GPU needed.

    Returns ``{name: triton CompiledKernel}`` (``.asm["ptx"]``, ``.asm["cubin"]``, ``.name``),
    e.g. for a TensorRT ``aot_impl`` or a CI check. ``block_words`` fixes the greedy
    kernel's mask width (``ceil(M / 32)`` rounded up to a power of two).
    """
    iou_signature = {
        "boxes_ptr": "*fp32", "labels_ptr": "*i32", "mask_ptr": "*i32",
        "num_cand": "i32", "num_words": "i32", "iou_threshold": "fp32",
    }
    greedy_signature = {
        "mask_ptr": "*i32", "num_valid_ptr": "*i32", "keep_ptr": "*i32", "count_ptr": "*i32",
        "num_cand": "i32", "num_words": "i32", "max_det": "i32",
    }
    kernels = {}
    for agnostic in (False, True):
        constexprs = {"CLASS_AGNOSTIC": agnostic, "BLOCK": BLOCK_ROWS}
        name = "iou_mask_agnostic" if agnostic else "iou_mask"
        kernels[name] = compile_for_cuda(_iou_mask_kernel, iou_signature, constexprs, arch=arch)
    kernels["greedy"] = compile_for_cuda(_greedy_kernel, greedy_signature, {"BLOCK_WORDS": block_words}, arch=arch)
    return kernels


def benchmark(
    *,
    batch: int = 8,
    num_boxes: int = 1000,
    num_classes: int = 80,
    per_class_boxes: bool = False,
    score_threshold: float = 0.05,
    iou_threshold: float = 0.5,
    max_det: int = 100,
    pre_nms_top_k: int = 4096,
    device: str = "cuda",
    seed: int = 0,
) -> dict:
    """Median milliseconds of the Triton kernel and the torchvision reference on ``device``.

    Random boxes in a 640 px image, uniform scores. Returns
    ``{"triton_ms", "reference_ms", "same_num_dets", **settings}`` (``same_num_dets``:
    whether both kept the same number of boxes per image, a quick sanity check).
    """
    from triton.testing import do_bench

    gen = torch.Generator(device="cpu").manual_seed(seed)
    box_shape = (batch, num_boxes, num_classes) if per_class_boxes else (batch, num_boxes)
    xy = torch.rand(*box_shape, 2, generator=gen) * 560
    boxes = torch.cat([xy, xy + 8 + torch.rand(*box_shape, 2, generator=gen) * 120], -1).to(device)
    scores = torch.rand(batch, num_boxes, num_classes, generator=gen).to(device)
    args = (boxes, scores, score_threshold, iou_threshold, max_det, pre_nms_top_k, False)
    same = torch.equal(batched_nms_triton(*args)[0].cpu(), batched_nms_reference(*args)[0].cpu())
    return {
        "triton_ms": do_bench(lambda: batched_nms_triton(*args)),
        "reference_ms": do_bench(lambda: batched_nms_reference(*args)),
        "same_num_dets": same,
        "batch": batch, "num_boxes": num_boxes, "num_classes": num_classes,
        "per_class_boxes": per_class_boxes, "pre_nms_top_k": pre_nms_top_k, "max_det": max_det,
    }
