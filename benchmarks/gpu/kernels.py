"""The SDK's two custom ops against torchvision's, on the same device and inputs.

- ``sdk::batched_nms`` (one call for the whole batch) vs ``torchvision.ops.batched_nms``
  run per image the way torchvision's detectors do (score threshold, class-aware NMS,
  keep ``max_det``): candidates are boxes with one class above the threshold each.
- ``sdk::multilevel_roi_align`` vs ``torchvision.ops.MultiScaleRoIAlign`` over P2-P5
  (strides 4-32) with RoIs of every size, so all four levels are used.

Each measurement is the median of ``iters`` synchronized calls after ``warmup``, and
says how well the two agree (NMS: the fraction of torchvision's kept detections the
SDK keeps too; RoIAlign: the largest absolute difference).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

SCORE_THR, IOU_THR, MAX_DET = 0.05, 0.5, 100
STRIDES = (4, 8, 16, 32)


@dataclass(frozen=True)
class KernelSizes:
    """What to measure: NMS over ``nms_candidates`` x ``nms_classes`` per image, RoIAlign of
    ``rois`` RoIs per image on ``channels``-channel P2-P5 maps of an ``image_hw`` input."""

    batches: tuple[int, ...] = (1, 8)
    nms_candidates: tuple[int, ...] = (1000, 5000)
    nms_classes: int = 80
    rois: int = 1000
    channels: int = 256
    image_hw: tuple[int, int] = (800, 1344)
    warmup: int = 5
    iters: int = 20


TINY = KernelSizes(batches=(1, 2), nms_candidates=(64,), nms_classes=4, rois=16, channels=8, image_hw=(128, 192),
                   warmup=1, iters=2)


def median_ms(fn: Callable[[], Any], device: str, warmup: int, iters: int) -> float:
    """Median wall time of ``fn()`` in ms, the device synchronized around every call."""
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    times.sort()
    return 1000 * times[len(times) // 2]


def nms_inputs(batch: int, candidates: int, classes: int, device: str, seed: int = 0):
    """``boxes`` [B, N, 4] xyxy pixels, ``scores`` [B, N, C]: each box one class above
    ``SCORE_THR``, the others below it, so there are exactly N candidates per image."""
    import torch

    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, candidates, 2, generator=g) * 1000
    boxes = torch.cat([xy, xy + 8 + torch.rand(batch, candidates, 2, generator=g) * 200], -1)
    scores = torch.rand(batch, candidates, classes, generator=g) * SCORE_THR * 0.8
    label = torch.randint(0, classes, (batch, candidates, 1), generator=g)
    scores.scatter_(2, label, SCORE_THR + (1 - SCORE_THR) * torch.rand(batch, candidates, 1, generator=g))
    return boxes.to(device), scores.to(device)


def torchvision_nms(boxes, scores) -> list[tuple]:
    """Per image: (boxes [k, 4], scores [k], labels [k]) kept by torchvision, best first."""
    from torchvision.ops import batched_nms

    out = []
    for b in range(scores.shape[0]):
        idx, cls = (scores[b] > SCORE_THR).nonzero(as_tuple=True)
        s = scores[b][idx, cls]
        keep = batched_nms(boxes[b][idx], s, cls, IOU_THR)[:MAX_DET]
        out.append((boxes[b][idx][keep], s[keep], cls[keep]))
    return out


def sdk_nms(boxes, scores):
    import torch

    import sdk.trt_plugins.batched_nms  # noqa: F401  registers torch.ops.sdk.batched_nms

    return torch.ops.sdk.batched_nms(boxes, scores, SCORE_THR, IOU_THR, MAX_DET)


def nms_agreement(sdk_out, tv_out) -> float:
    """Fraction of torchvision's kept (label, box) pairs that the SDK kept too."""
    num, boxes, _, labels = (t.cpu() for t in sdk_out)
    hit = total = 0
    for b, (tv_boxes, _, tv_labels) in enumerate(tv_out):
        n = int(num[b, 0])
        mine = {(int(lab), *(round(float(v), 3) for v in box)) for box, lab in zip(boxes[b, :n], labels[b, :n])}
        theirs = [(int(lab), *(round(float(v), 3) for v in box)) for box, lab in zip(tv_boxes.cpu(), tv_labels.cpu())]
        hit += sum(t in mine for t in theirs)
        total += len(theirs)
    return hit / max(total, 1)


def roi_inputs(batch: int, rois: int, channels: int, image_hw: tuple[int, int], device: str, dtype, seed: int = 0):
    """``rois`` [B, R, 4] xyxy input pixels (sides 8..640, spread over every level),
    ``features`` P2-P5 [B, C, H/s, W/s]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    h, w = image_hw
    side = torch.exp(torch.empty(batch, rois, 2).uniform_(math.log(8), math.log(640), generator=g))
    x1 = torch.rand(batch, rois, generator=g) * (w - side[..., 0]).clamp(min=1)
    y1 = torch.rand(batch, rois, generator=g) * (h - side[..., 1]).clamp(min=1)
    boxes = torch.stack([x1, y1, (x1 + side[..., 0]).clamp(max=w), (y1 + side[..., 1]).clamp(max=h)], -1)
    features = [torch.randn(batch, channels, h // s, w // s, generator=g).to(device, dtype) for s in STRIDES]
    return boxes.to(device), features


def sdk_roi_align(rois, features):
    import torch

    import sdk.trt_plugins.multilevel_roi_align  # noqa: F401  registers the op

    return torch.ops.sdk.multilevel_roi_align(rois, features, [7, 7], 2, False, [1 / s for s in STRIDES], 224, 4)


def torchvision_roi_align(rois, features, image_hw):
    from torchvision.ops import MultiScaleRoIAlign

    pooler = MultiScaleRoIAlign([f"p{i}" for i in range(2, 6)], 7, 2)
    maps = {f"p{i}": f for i, f in zip(range(2, 6), features)}
    return pooler(maps, [r.to(features[0].dtype) for r in rois], [image_hw] * rois.shape[0])


def kernel_records(device: str, sizes: KernelSizes) -> Iterator[dict[str, Any]]:
    """One record per (op, batch, size, dtype), as it is measured."""
    import torch

    for batch in sizes.batches:
        for n in sizes.nms_candidates:
            boxes, scores = nms_inputs(batch, n, sizes.nms_classes, device)
            with torch.inference_mode():
                agree = nms_agreement(sdk_nms(boxes, scores), torchvision_nms(boxes, scores))
                sdk_ms = median_ms(lambda b=boxes, s=scores: sdk_nms(b, s), device, sizes.warmup, sizes.iters)
                tv_ms = median_ms(lambda b=boxes, s=scores: torchvision_nms(b, s), device, sizes.warmup, sizes.iters)
            yield {"op": "batched_nms", "device": device, "batch": batch, "dtype": "float32",
                   "size": f"{n} candidates x {sizes.nms_classes} classes", "sdk_ms": sdk_ms, "torchvision_ms": tv_ms,
                   "speedup": tv_ms / sdk_ms, "agreement": f"{agree:.1%} of torchvision's kept boxes"}
    for dtype in (torch.float32, torch.float16) if device.startswith("cuda") else (torch.float32,):
        for batch in sizes.batches:
            rois, features = roi_inputs(batch, sizes.rois, sizes.channels, sizes.image_hw, device, dtype)
            with torch.inference_mode():
                diff = (sdk_roi_align(rois, features).flatten(0, 1).float()
                        - torchvision_roi_align(rois, features, sizes.image_hw).float()).abs().max().item()
                sdk_ms = median_ms(lambda r=rois, f=features: sdk_roi_align(r, f), device, sizes.warmup, sizes.iters)
                tv_ms = median_ms(lambda r=rois, f=features: torchvision_roi_align(r, f, sizes.image_hw), device,
                                  sizes.warmup, sizes.iters)
            yield {"op": "multilevel_roi_align", "device": device, "batch": batch, "dtype": str(dtype).split(".")[-1],
                   "size": f"{sizes.rois} RoIs, P2-P5 x {sizes.channels} ch, {sizes.image_hw[0]}x{sizes.image_hw[1]}, "
                           f"{str(dtype).split('.')[-1]}",
                   "sdk_ms": sdk_ms, "torchvision_ms": tv_ms, "speedup": tv_ms / sdk_ms,
                   "agreement": f"max abs diff {diff:.2e}"}
