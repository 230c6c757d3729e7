"""Per-image COCO AP and the best and worst images (MMDetection's ``analyze_results.py``).

pycocotools evaluates the whole dataset once (``COCOeval.evaluate``: per image and
category matching at the ten IoU thresholds); each image's AP is then
``COCOeval.accumulate`` over that image's entries alone, averaged as pycocotools'
``summarize`` does (IoU .50:.95, area all, 100 detections, over the categories the
image has ground truth of). So an image's AP equals that of ``COCOeval`` run on a
dataset of that one image. Images without ground truth have no AP (``None``); they
are listed, not ranked.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from sdk.analysis.common import ground_truth, write_csv
from sdk.detections import Detections
from sdk.errors import require

if TYPE_CHECKING:  # pragma: no cover
    from pycocotools.coco import COCO

    from sdk.data.coco import CocoDetection


@dataclass(frozen=True)
class ImageScore:
    image_id: int
    ap: float | None  # AP@[.5:.95]
    ap50: float | None
    num_gt: int
    num_dets: int


def per_image_ap(gt: "str | Path | COCO", results: list[dict[str, Any]]) -> dict[int, ImageScore]:
    """``{image_id: ImageScore}`` of COCO results-format ``results`` against ``gt``."""
    cocoeval_mod = require("pycocotools.cocoeval", extra="train", purpose="per-image AP")
    from sdk.evaluation.coco_eval import load_coco_gt, load_results

    gt = load_coco_gt(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = cocoeval_mod.COCOeval(gt, load_results(gt, results), iouType="bbox")
        evaluator.evaluate()
    params = evaluator._paramsEval
    image_ids = [int(i) for i in params.imgIds]
    n_img, n_area, n_cat = len(image_ids), len(params.areaRng), len(params.catIds)
    num_dets: dict[int, int] = {}
    for entry in results:
        num_dets[int(entry["image_id"])] = num_dets.get(int(entry["image_id"]), 0) + 1
    out: dict[int, ImageScore] = {}
    for i, image_id in enumerate(image_ids):
        num_gt = len(gt.getAnnIds(imgIds=[image_id], iscrowd=False))
        one = copy.copy(evaluator)  # a view of the same evaluation restricted to image i
        one.params = copy.copy(evaluator.params)
        one._paramsEval = copy.copy(params)
        one.params.imgIds = one._paramsEval.imgIds = [image_id]
        one.evalImgs = [evaluator.evalImgs[k * n_area * n_img + a * n_img + i] for k in range(n_cat) for a in range(n_area)]
        with contextlib.redirect_stdout(io.StringIO()):
            one.accumulate()
        precision = one.eval["precision"][:, :, :, 0, -1]  # [iou, recall, category] at area all, 100 dets
        out[image_id] = ImageScore(image_id, _mean_valid(precision), _mean_valid(precision[0]), num_gt,
                                   num_dets.get(image_id, 0))
    return out


def _mean_valid(precision: np.ndarray) -> float | None:
    valid = precision[precision > -1]
    return float(valid.mean()) if valid.size else None


def rank_images(scores: Mapping[int, ImageScore], topk: int) -> tuple[list[ImageScore], list[ImageScore]]:
    """(best ``topk`` by AP, descending; worst ``topk``, ascending), ties by image id;
    images without AP are left out. An image is in both lists only when there are
    fewer than 2 * ``topk`` ranked images."""
    ranked = sorted((s for s in scores.values() if s.ap is not None), key=lambda s: (-s.ap, s.image_id))
    best = ranked[:topk]
    worst = sorted(ranked, key=lambda s: (s.ap, s.image_id))[:topk]
    return best, worst


def draw_pair(image_rgb: np.ndarray, gt: Detections, dets: Detections, *, score_thr: float, title: str = "",
              min_width: int = 320) -> np.ndarray:
    """BGR picture: the ground truth (left) beside the detections scoring at least
    ``score_thr`` (right), under a caption (``title`` on a second line). Images
    narrower than ``min_width`` are enlarged (nearest neighbour) so labels stay legible."""
    import math

    import cv2

    from sdk.visualize import draw_detections

    h, w = image_rgb.shape[:2]
    factor = max(1, math.ceil(min_width / w))
    if factor > 1:
        image_rgb = cv2.resize(image_rgb, (w * factor, h * factor), interpolation=cv2.INTER_NEAREST)
        gt = Detections(gt.boxes * factor, gt.scores, gt.labels, gt.class_names)
        dets = Detections(dets.boxes * factor, dets.scores, dets.labels, dets.class_names)
        h, w = h * factor, w * factor
    left = draw_detections(image_rgb, gt, channel_order="rgb", show_scores=False)
    right = draw_detections(image_rgb, dets, channel_order="rgb", score_thr=score_thr)
    body = np.concatenate([left, np.full((h, 6, 3), 255, np.uint8), right], axis=1)
    lines = [("ground truth", f"predictions (score >= {score_thr:g})")] + ([(title, "")] if title else [])
    line_h, scale = 20, 0.45
    bar = np.full((line_h * len(lines) + 4, body.shape[1], 3), 255, np.uint8)
    for i, (left_text, right_text) in enumerate(lines):
        y = line_h * (i + 1) - 5
        cv2.putText(bar, left_text, (4, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        if right_text:
            cv2.putText(bar, right_text, (w + 10, y), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([bar, body], axis=0)


def write_report(dataset: "CocoDetection", detections: Mapping[int, Detections], scores: Mapping[int, ImageScore],
                 out_dir: str | Path, *, topk: int, score_thr: float) -> dict[str, Any]:
    """``per_image.csv`` (every image) and ``best/``, ``worst/`` drawings
    ``<rank>_ap<AP>_<file name>.jpg``; returns a summary dict."""
    import cv2

    out_dir = Path(out_dir)
    index_of = {image_id: i for i, image_id in enumerate(dataset.image_ids)}
    rows = []
    for image_id in dataset.image_ids:
        s = scores[image_id]
        entry = dataset.image_entry(index_of[image_id])
        rows.append([image_id, entry.file_name, _cell(s.ap), _cell(s.ap50), s.num_gt, s.num_dets])
    write_csv(out_dir / "per_image.csv", ["image_id", "file_name", "ap", "ap50", "num_gt", "num_dets"], rows)
    best, worst = rank_images(scores, topk)
    for folder, chosen in (("best", best), ("worst", worst)):
        target = out_dir / folder
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("*.jpg"):
            old.unlink()
        for rank, s in enumerate(chosen, 1):
            index = index_of[s.image_id]
            entry = dataset.image_entry(index)
            picture = draw_pair(dataset.load_image(index), ground_truth(dataset, index), detections[s.image_id],
                                score_thr=score_thr,
                                title=f"{entry.file_name}: AP {s.ap:.3f}, AP50 {s.ap50:.3f}")
            name = f"{rank:03d}_ap{s.ap:.3f}_{Path(entry.file_name).stem}.jpg"
            cv2.imwrite(str(target / name), picture)
    ranked = [s.ap for s in scores.values() if s.ap is not None]
    return {
        "images": len(scores),
        "ranked": len(ranked),
        "without_ground_truth": len(scores) - len(ranked),
        "mean_image_ap": float(np.mean(ranked)) if ranked else None,
        "best": [{"image_id": s.image_id, "ap": s.ap} for s in best],
        "worst": [{"image_id": s.image_id, "ap": s.ap} for s in worst],
    }


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"
