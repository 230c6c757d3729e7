"""Drawing detections on images (OpenCV)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from sdk.images import load_image

if TYPE_CHECKING:
    from sdk.detections import Detections


def color_for(label: int) -> tuple[int, int, int]:
    """A stable, distinct BGR colour per label (golden-ratio hue walk)."""
    hue = int((label * 0.618033988749895 % 1.0) * 179)
    hsv = np.uint8([[[hue, 200, 255]]])
    b, g, r = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def draw_detections(image: Any, dets: "Detections", *, score_thr: float = 0.0, channel_order: str = "bgr",
                    line_width: int | None = None, show_scores: bool = True) -> np.ndarray:
    """Return a BGR uint8 (H, W, 3) copy of ``image`` with the boxes scoring at least
    ``score_thr``, their class names and (unless ``show_scores`` is false, e.g. for
    ground truth) scores drawn.

    Drawn in ascending score order, so where boxes overlap (often one object with
    several class hypotheses) the best-scoring label ends on top. Instance masks
    (``dets.masks``) of the drawn detections are tinted in their class colour (45 %)
    under the boxes.
    """
    bgr = cv2.cvtColor(load_image(image, channel_order=channel_order), cv2.COLOR_RGB2BGR)  # a new array
    h, w = bgr.shape[:2]
    lw = line_width or max(1, round((h + w) / 600))
    font_scale = max(0.35, lw / 3)
    names = dets.names
    if dets.masks is not None:
        for i in np.argsort(dets.scores, kind="stable"):
            if dets.scores[i] >= score_thr and dets.masks[i].shape == (h, w):
                region = dets.masks[i]
                tint = np.array(color_for(int(dets.labels[i])), np.float32)
                bgr[region] = (bgr[region] * 0.55 + tint * 0.45).astype(np.uint8)
    for i in np.argsort(dets.scores, kind="stable"):
        box, score, label, name = dets.boxes[i], dets.scores[i], dets.labels[i], names[i]
        if score < score_thr:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        color = color_for(int(label))
        cv2.rectangle(bgr, (x1, y1), (x2, y2), color, lw, cv2.LINE_AA)
        text = f"{name} {score:.2f}" if show_scores else str(name)
        (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, font_scale, max(1, lw - 1))
        ty = y1 - 2 if y1 - th - base >= 0 else y1 + th + base
        cv2.rectangle(bgr, (x1, ty - th - base), (x1 + tw, ty + base - 1), color, -1)
        cv2.putText(bgr, text, (x1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, font_scale, (0, 0, 0), max(1, lw - 1), cv2.LINE_AA)
    return bgr
