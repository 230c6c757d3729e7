"""Instance masks: the one paste from box-relative probabilities to image pixels, and RLE.

Mask R-CNN predicts, per detection, an M x M grid of probabilities spanning its box
(docs/architecture.md, contract 2: ``masks`` float32 [B, K, M, M]). ``paste_masks``
puts them into an image, exactly as torchvision's ``paste_masks_in_image`` does (a
one-pixel zero border, the box grown by (M + 2) / M and truncated to integers,
bilinear resizing with half-pixel centres, ``align_corners=False``), in numpy and
OpenCV, so ONNX Runtime and OpenVINO deployments need no torch. Every backend and the
eager evaluation paste through ``sdk.postprocess.decode_outputs``, which calls this.

RLE: COCO's run-length encoding through ``pycocotools.mask`` (an optional package:
the ``train`` / ``analysis`` extras), imported only when a mask is encoded.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

MASK_THRESHOLD = 0.5
"""A pasted probability at or above this is the object's (torchvision's references: > 0.5)."""


def paste_masks(masks: np.ndarray, boxes: np.ndarray, image_hw: tuple[int, int], *,
                threshold: float | None = MASK_THRESHOLD) -> np.ndarray:
    """Paste box-relative masks into an (H, W) image.

    Args:
        masks: float32 [N, M, M] probabilities, each spanning its box.
        boxes: float32 [N, 4] xyxy in the pixels of the target image.
        image_hw: (H, W) of the target image.
        threshold: ``None`` returns the pasted probabilities (float32 [N, H, W], what
            torchvision's ``paste_masks_in_image`` returns); a number returns bool
            [N, H, W], ``probability >= threshold``.
    """
    masks = np.asarray(masks, np.float32)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    height, width = int(image_hw[0]), int(image_hw[1])
    num = len(boxes)
    if masks.shape[0] != num:
        raise ValueError(f"paste_masks got {masks.shape[0]} masks for {num} boxes")
    out = np.zeros((num, height, width), np.float32 if threshold is None else np.bool_)
    if num == 0:
        return out
    size = masks.shape[-1]
    padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))  # torchvision's expand_masks(padding=1)
    scale = (size + 2) / size
    # torchvision's expand_boxes (in float32), then .to(int64): truncation toward zero
    half_w = (boxes[:, 2] - boxes[:, 0]) * np.float32(0.5 * scale)
    half_h = (boxes[:, 3] - boxes[:, 1]) * np.float32(0.5 * scale)
    cx, cy = (boxes[:, 2] + boxes[:, 0]) * np.float32(0.5), (boxes[:, 3] + boxes[:, 1]) * np.float32(0.5)
    grown = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1).astype(np.int64)
    for i, (x1, y1, x2, y2) in enumerate(grown.tolist()):
        w, h = max(x2 - x1 + 1, 1), max(y2 - y1 + 1, 1)
        x0, x1c, y0, y1c = max(x1, 0), min(x2 + 1, width), max(y1, 0), min(y2 + 1, height)
        if x1c <= x0 or y1c <= y0:
            continue
        resized = cv2.resize(padded[i], (w, h), interpolation=cv2.INTER_LINEAR)
        crop = resized[y0 - y1 : y1c - y1, x0 - x1 : x1c - x1]
        out[i, y0:y1c, x0:x1c] = crop if threshold is None else crop >= threshold
    return out


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """COCO compressed RLE of one (H, W) binary mask: ``{"size": [H, W], "counts": str}``
    (JSON-ready; ``pycocotools.mask.decode`` inverts it)."""
    from sdk.errors import require

    mask_utils = require("pycocotools.mask", extra="train", purpose="Encoding masks as COCO RLE")
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, np.uint8)))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """bool (H, W) of a COCO RLE (compressed ``counts`` string or bytes)."""
    from sdk.errors import require

    mask_utils = require("pycocotools.mask", extra="train", purpose="Decoding COCO RLE masks")
    counts = rle["counts"]
    compressed = {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    return mask_utils.decode(compressed).astype(bool)
