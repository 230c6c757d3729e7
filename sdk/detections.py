"""``Detections``: what every backend returns for one image.

Boxes are float32 (N, 4) xyxy in **original-image pixels**, clipped to the image;
scores float32 (N,) descending; labels int64 (N,) indexing ``class_names``; optional
``masks`` bool (N, H, W) in original-image pixels (instance segmentation models; pasted
by ``sdk.masks.paste_masks``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np


@dataclass
class Detections:
    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    class_names: Sequence[str] = field(default_factory=tuple)
    masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float32).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float32).reshape(-1)
        self.labels = np.asarray(self.labels, np.int64).reshape(-1)
        if not (len(self.boxes) == len(self.scores) == len(self.labels)):
            raise ValueError(
                f"Detections fields differ in length: boxes {len(self.boxes)}, "
                f"scores {len(self.scores)}, labels {len(self.labels)}"
            )
        if self.masks is not None:
            self.masks = np.asarray(self.masks).astype(bool, copy=False)
            if self.masks.ndim != 3 or len(self.masks) != len(self.scores):
                raise ValueError(f"Detections masks must be (N, H, W) for {len(self.scores)} detections, "
                                 f"got {self.masks.shape}")

    @classmethod
    def empty(cls, class_names: Sequence[str] = ()) -> "Detections":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), class_names)

    def __len__(self) -> int:
        return len(self.scores)

    def __repr__(self) -> str:
        top = ", ".join(f"{n}:{s:.2f}" for n, s in zip(self.names[:5], self.scores[:5]))
        more = "" if len(self) <= 5 else f", ... (+{len(self) - 5})"
        return f"Detections(n={len(self)}{': ' + top if top else ''}{more})"

    @property
    def names(self) -> list[str]:
        """Class name of each detection (``str(label)`` where no name is known)."""
        n = len(self.class_names)
        return [self.class_names[i] if 0 <= i < n else str(int(i)) for i in self.labels]

    def filter(self, keep: float | np.ndarray | Sequence[bool] | Sequence[int]) -> "Detections":
        """A subset: the detections scoring at least ``keep`` (a number), or those
        selected by ``keep`` as a boolean mask (N,) or an index array."""
        if np.isscalar(keep):
            keep = self.scores >= float(keep)
        else:
            keep = np.asarray(keep)
            if keep.dtype == np.bool_ and keep.shape != self.scores.shape:
                raise ValueError(f"a boolean mask for {len(self)} detections has shape {keep.shape}")
            if keep.dtype != np.bool_ and not np.issubdtype(keep.dtype, np.integer):
                raise ValueError(f"filter takes a score threshold, a boolean mask or indices, not {keep.dtype}")
        masks = self.masks[keep] if self.masks is not None else None
        return Detections(self.boxes[keep], self.scores[keep], self.labels[keep], self.class_names, masks)

    def to_coco(self, image_id: int, category_ids: Mapping[str, int] | Sequence[int] | None = None) -> list[dict[str, Any]]:
        """COCO results-format entries (``bbox`` is x, y, w, h; with masks also
        ``segmentation``, COCO compressed RLE via ``pycocotools.mask.encode``).

        ``category_ids`` maps each class name (a mapping) or label index (a sequence)
        to its dataset category id; by default the label index is the category id.
        Detections whose class has no category id are left out.
        """
        out = []
        for i, (box, score, label, name) in enumerate(zip(self.boxes, self.scores, self.labels, self.names)):
            if category_ids is None:
                cat = int(label)
            elif isinstance(category_ids, Mapping):
                if name not in category_ids:
                    continue
                cat = int(category_ids[name])
            else:
                if not 0 <= label < len(category_ids) or category_ids[label] is None:
                    continue
                cat = int(category_ids[label])
            x1, y1, x2, y2 = (float(v) for v in box)
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": cat,
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "score": round(float(score), 5),
                }
            )
            if self.masks is not None:
                from sdk.masks import encode_rle

                out[-1]["segmentation"] = encode_rle(self.masks[i])
        return out

    def to_dict(self, *, masks: bool = True) -> dict[str, Any]:
        """JSON-ready: ``boxes`` (3 decimals), ``scores`` (5), ``labels``, ``names`` and,
        with masks (unless ``masks=False``), ``masks``: one COCO compressed RLE per
        detection (``sdk.masks.decode_rle`` inverts it; needs pycocotools)."""
        out = {
            # float64 before rounding: a rounded float32 prints as 295.4100036621094
            "boxes": np.round(self.boxes.astype(np.float64), 3).tolist(),
            "scores": np.round(self.scores.astype(np.float64), 5).tolist(),
            "labels": self.labels.tolist(),
            "names": self.names,
        }
        if masks and self.masks is not None:
            from sdk.masks import encode_rle

            out["masks"] = [encode_rle(mask) for mask in self.masks]
        return out

    def to_json(self, **kwargs: Any) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    def plot(self, image: Any, *, score_thr: float = 0.3, channel_order: str = "bgr", line_width: int | None = None) -> np.ndarray:
        """Draw the boxes scoring at least ``score_thr`` (default 0.3, as ``sdk infer``:
        detectors keep hypotheses down to ~0.05, which clutter a picture; pass 0 for
        all) on a copy of ``image``, best label on top; returns an (H, W, 3) uint8
        **BGR** array (ready for ``cv2.imwrite``). ``image`` is any ``sdk.images`` input."""
        from sdk.visualize import draw_detections

        return draw_detections(image, self, score_thr=score_thr, channel_order=channel_order, line_width=line_width)
