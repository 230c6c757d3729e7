"""The COCO error breakdown (the ``analyze()`` of the COCO API, after Hoiem et al.).

For each category, seven precision/recall curves, each allowing one more kind of
error than the one before (pycocotools ``COCOeval``, 100 detections per image):

====  ===========================================================================
C75   PR at IoU .75 (the strict COCO metric)
C50   PR at IoU .50 (PASCAL)
Loc   PR at IoU .10: localization errors forgiven (duplicates still count)
Sim   also forgiven: detections on ground truth of another class of the same
      supercategory (that ground truth is relabelled to the category and ignored)
Oth   also forgiven: detections on ground truth of any other class
BG    also forgiven: detections on background (precision 1 up to the recall
      reached, i.e. every remaining false positive removed)
FN    also forgiven: the misses (precision 1 at every recall)
====  ===========================================================================

The area under each curve (AP) is reported per category and for the dataset (the
mean over the categories that have ground truth, per area range), and plotted as
the nested curves of the COCO analysis figures. Categories without a
``supercategory`` are their own: then Sim equals Loc. Ignoring the relabelled ground
truth uses pycocotools' own "ignore" matching (a detection on an ignored box is
neither a true nor a false positive); pycocotools resets ``ignore`` from
``iscrowd`` when it prepares, so the evaluator below re-applies the flag.
"""

from __future__ import annotations

import contextlib
import copy
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from sdk.analysis.common import pyplot, save_figure, write_csv, write_json
from sdk.errors import require

if TYPE_CHECKING:  # pragma: no cover
    from pycocotools.coco import COCO

ERROR_TYPES = ("C75", "C50", "Loc", "Sim", "Oth", "BG", "FN")
AREAS = ("all", "small", "medium", "large")
_IGNORE_KEY = "_analysis_ignore"
# fill colours of the nested areas, as in the COCO analysis figures
_COLORS = [(1, 1, 1), (0.31, 0.51, 0.74), (0.75, 0.31, 0.30), (0.36, 0.90, 0.38), (0.50, 0.39, 0.64),
           (1, 0.6, 0), (0.8, 0.8, 0.8)]


@dataclass
class ErrorBreakdown:
    """``precision`` [7 types, R recall points, K categories, 4 areas] (pycocotools'
    101 recall thresholds ``recall``), ``has_gt`` [K, 4] and the category names."""

    precision: np.ndarray
    recall: np.ndarray
    names: list[str]
    has_gt: np.ndarray

    def ap(self, k: int | None = None, area: int = 0) -> dict[str, float | None]:
        """AP per error type, of category ``k`` or (``None``) the mean over the
        categories with ground truth in ``area``."""
        if k is None:
            cats = np.nonzero(self.has_gt[:, area])[0]
            if cats.size == 0:
                return {t: None for t in ERROR_TYPES}
            return {t: float(self.precision[i][:, cats, area].mean()) for i, t in enumerate(ERROR_TYPES)}
        if not self.has_gt[k, area]:
            return {t: None for t in ERROR_TYPES}
        return {t: float(self.precision[i][:, k, area].mean()) for i, t in enumerate(ERROR_TYPES)}


def _evaluator_class() -> type:
    cocoeval_mod = require("pycocotools.cocoeval", extra="train", purpose="the COCO error analysis")

    class IgnoringCOCOeval(cocoeval_mod.COCOeval):
        """``COCOeval`` that keeps the ignore flag set on relabelled ground truth."""

        def _prepare(self) -> None:
            super()._prepare()
            for gts in self._gts.values():
                for g in gts:
                    if g.get(_IGNORE_KEY):
                        g["ignore"] = 1

    return IgnoringCOCOeval


def _precision(gt: "COCO", dt: "COCO", iou_thrs: Sequence[float], cat_ids: Sequence[int] | None = None) -> np.ndarray:
    """pycocotools' accumulated precision [T, R, K, A] at ``iou_thrs``, 100 detections."""
    evaluator = _evaluator_class()(gt, dt, iouType="bbox")
    evaluator.params.iouThrs = np.asarray(iou_thrs, np.float64)
    evaluator.params.maxDets = [100]
    if cat_ids is not None:
        evaluator.params.catIds = list(cat_ids)
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator.evaluate()
        evaluator.accumulate()
    return evaluator.eval["precision"][..., 0]


def _relabelled(gt: "COCO", cat_id: int, forgive: Callable[[int], bool]) -> "COCO":
    """A copy of ``gt`` whose annotations of categories ``forgive(cat)`` are relabelled
    to ``cat_id`` and ignored."""
    data = copy.deepcopy(gt.dataset)
    for ann in data["annotations"]:
        if ann["category_id"] != cat_id and forgive(ann["category_id"]):
            ann["category_id"] = cat_id
            ann[_IGNORE_KEY] = 1
    out = type(gt)()
    out.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        out.createIndex()
    return out


def analyze_errors(gt: "str | Path | COCO", results: "list[dict[str, Any]] | str | Path", *,
                   progress: bool = True) -> ErrorBreakdown:
    """The breakdown of COCO results (entries or a results JSON file) against ``gt``."""
    from tqdm import tqdm

    from sdk.evaluation.coco_eval import load_coco_gt, load_results

    gt = load_coco_gt(gt)
    dt = load_results(gt, results)
    cat_ids = sorted(gt.getCatIds())
    cats = {c["id"]: c for c in gt.loadCats(cat_ids)}
    names = [cats[c]["name"] for c in cat_ids]
    base = _precision(gt, dt, [0.75, 0.5, 0.1])  # [3, R, K, A]
    has_gt = (base[0] > -1).any(axis=0)  # [K, A]
    precision = np.zeros((len(ERROR_TYPES), *base.shape[1:]))
    precision[:3] = base
    for k, cat_id in enumerate(tqdm(cat_ids, desc="errors", unit="class", disable=not progress, leave=False)):
        superc = cats[cat_id].get("supercategory")
        same_super = _relabelled(gt, cat_id, lambda c, superc=superc: superc is not None and cats[c].get("supercategory") == superc)
        precision[3, :, k] = _precision(same_super, dt, [0.1], [cat_id])[0, :, 0]
        any_class = _relabelled(gt, cat_id, lambda c: True)
        precision[4, :, k] = _precision(any_class, dt, [0.1], [cat_id])[0, :, 0]
    precision[precision == -1] = 0
    precision[5] = precision[4] > 0
    precision[6] = 1.0
    precision[:, :, ~has_gt] = 0
    return ErrorBreakdown(precision, np.linspace(0.0, 1.0, precision.shape[1]), names, has_gt)


def plot_breakdown(breakdown: ErrorBreakdown, k: int | None, area: int, out: str | Path) -> Path:
    """The nested PR areas of category ``k`` (``None``: all categories) in ``area``."""
    plt = pyplot()
    cats = np.nonzero(breakdown.has_gt[:, area])[0] if k is None else np.array([k])
    curves = [breakdown.precision[i][:, cats, area].mean(axis=1) if cats.size else np.zeros_like(breakdown.recall)
              for i in range(len(ERROR_TYPES))]
    aps = breakdown.ap(k, area)
    fig, ax = plt.subplots(figsize=(6, 4.5))
    below = np.zeros_like(breakdown.recall)
    for i, t in enumerate(ERROR_TYPES):
        ax.plot(breakdown.recall, curves[i], color="black", linewidth=0.5)
        ap = aps[t]
        ax.fill_between(breakdown.recall, below, curves[i], color=_COLORS[i],
                        label=f"[{ap:.3f}] {t}" if ap is not None else f"[-] {t}")
        below = curves[i]
    name = "all classes" if k is None else breakdown.names[k]
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="recall", ylabel="precision", title=f"{name}, area {AREAS[area]}")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="lower left", fontsize=8)  # FN (top area) first
    return save_figure(fig, out)


def plot_class_bars(breakdown: ErrorBreakdown, out: str | Path, area: int = 0) -> Path:
    """Per category, stacked bars of the AP gained at each step (C75, then what
    C50, Loc, Sim, Oth, BG and FN add)."""
    plt = pyplot()
    names = [*breakdown.names, "all classes"]
    aps = [breakdown.ap(k, area) for k in range(len(breakdown.names))] + [breakdown.ap(None, area)]
    fig, ax = plt.subplots(figsize=(max(6, 0.8 * len(names) + 2), 4.5))
    bottom = np.zeros(len(names))
    previous = np.zeros(len(names))
    for i, t in enumerate(ERROR_TYPES):
        values = np.array([a[t] if a[t] is not None else 0.0 for a in aps])
        ax.bar(range(len(names)), values - previous, bottom=bottom, color=_COLORS[i], edgecolor="black",
               linewidth=0.4, label=t)
        bottom += values - previous
        previous = values
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set(ylim=(0, 1), ylabel="AP", title=f"COCO error breakdown per class, area {AREAS[area]}")
    ax.legend(fontsize=8, bbox_to_anchor=(1.01, 1), loc="upper left")
    return save_figure(fig, out)


def write_breakdown(breakdown: ErrorBreakdown, out_dir: str | Path, *, per_class_plots: bool = True) -> dict[str, Any]:
    """``errors.json`` and ``errors.csv`` (AP per type, per class and overall, every
    area), ``overall-<area>.png``, ``classes.png`` and ``class-<name>.png`` (area all)."""
    out_dir = Path(out_dir)
    table: dict[str, Any] = {}
    rows = []
    for area, area_name in enumerate(AREAS):
        per_area = {"all classes": breakdown.ap(None, area)}
        per_area.update({name: breakdown.ap(k, area) for k, name in enumerate(breakdown.names)})
        table[area_name] = per_area
        rows += [[area_name, name, *("" if v[t] is None else f"{v[t]:.4f}" for t in ERROR_TYPES)]
                 for name, v in per_area.items()]
    write_json(out_dir / "errors.json", table)
    write_csv(out_dir / "errors.csv", ["area", "class", *ERROR_TYPES], rows)
    for area, area_name in enumerate(AREAS):
        if breakdown.has_gt[:, area].any():
            plot_breakdown(breakdown, None, area, out_dir / f"overall-{area_name}.png")
    plot_class_bars(breakdown, out_dir / "classes.png")
    if per_class_plots:
        for k, name in enumerate(breakdown.names):
            if breakdown.has_gt[k, 0]:
                plot_breakdown(breakdown, k, 0, out_dir / f"class-{_safe(name)}.png")
    return table


def format_breakdown(table: dict[str, Any], area: str = "all") -> str:
    rows = table[area]
    width = max(len(n) for n in rows)
    lines = [f"{'class':<{width}}  " + "  ".join(f"{t:>5}" for t in ERROR_TYPES)]
    for name, v in rows.items():
        lines.append(f"{name:<{width}}  " + "  ".join(f"{v[t]:5.3f}" if v[t] is not None else "    -" for t in ERROR_TYPES))
    return "\n".join(lines)


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
