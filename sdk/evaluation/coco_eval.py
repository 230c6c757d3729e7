"""COCO box and mask metrics of ``Detections`` against a COCO annotation file, via pycocotools.

Detections carry labels that index their model's class list; they are matched to the
dataset's categories by class *name* (``Detections.class_names[label]``), so a model
whose labels are contiguous (``["__background__", *names]``) or torchvision's 91-entry
COCO list evaluates on any dataset with non-contiguous category ids. Detections of
classes the dataset does not have are ignored (one log line counts them).

pycocotools' prints are silenced; its summary table goes to the log at INFO level.
Metrics are pycocotools' ``stats``: an entry is -1 where the dataset has no ground
truth in that area range (e.g. ``bbox_mAP_l`` without large objects).

Instance segmentation: when the detections carry masks (results with
``segmentation``, COCO RLE) and every ground-truth annotation has a ``segmentation``,
the same twelve numbers are computed with ``iouType="segm"`` under ``segm_*`` names
(``segm_classwise`` too). As detectron2 does, the results' ``bbox`` is dropped for the
segm run so small / medium / large follow the *mask* area, not the box area.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from sdk.detections import Detections
from sdk.errors import DatasetError, require

if TYPE_CHECKING:  # pragma: no cover
    from pycocotools.coco import COCO

logger = logging.getLogger(__name__)

METRIC_NAMES = (
    "bbox_mAP", "bbox_mAP_50", "bbox_mAP_75", "bbox_mAP_s", "bbox_mAP_m", "bbox_mAP_l",
    "bbox_AR_1", "bbox_AR_10", "bbox_AR_100", "bbox_AR_s", "bbox_AR_m", "bbox_AR_l",
)
"""Names of pycocotools' 12 ``COCOeval.stats``, in order."""

SEGM_METRIC_NAMES = tuple(name.replace("bbox_", "segm_", 1) for name in METRIC_NAMES)
"""The same 12 numbers of the mask evaluation (``iouType="segm"``)."""


def load_coco_gt(ann: "str | Path | COCO") -> "COCO":
    """A pycocotools ``COCO`` for ``ann`` (a path, or a ``COCO`` returned as is).

    Annotations lacking ``area`` or ``iscrowd`` (common in hand-made files) get
    COCO's defaults (box area, 0) so evaluation does not fail on them."""
    coco_mod = require("pycocotools.coco", extra="train", purpose="COCO evaluation")
    if isinstance(ann, coco_mod.COCO):
        return ann
    path = Path(ann)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"annotation file not found: {path}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); expected a COCO instances file") from exc
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) or not isinstance(data.get("categories"), list):
        raise DatasetError(f"{path}: not a COCO instances file (needs 'images' and 'categories' lists)")
    data.setdefault("annotations", [])
    try:
        for ann_entry in data["annotations"]:
            ann_entry.setdefault("iscrowd", 0)
            if "area" not in ann_entry:
                ann_entry["area"] = float(ann_entry["bbox"][2]) * float(ann_entry["bbox"][3])
        coco = coco_mod.COCO()
        coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):
            coco.createIndex()
    except (KeyError, TypeError, IndexError, AttributeError) as exc:
        raise DatasetError(f"{path}: malformed COCO entry ({type(exc).__name__}: {exc})") from exc
    return coco


def category_ids_by_name(coco: "COCO") -> dict[str, int]:
    """``{category name: id}`` of a ``COCO``; ``DatasetError`` on duplicate names."""
    out: dict[str, int] = {}
    for cat in sorted(coco.loadCats(coco.getCatIds()), key=lambda c: c["id"]):
        if cat["name"] in out:
            raise DatasetError(f"category name {cat['name']!r} appears twice; labels map to categories by name")
        out[cat["name"]] = int(cat["id"])
    return out


def detections_to_coco_results(detections: Mapping[int, Detections], category_ids_by_name: Mapping[str, int]) -> list[dict[str, Any]]:
    """COCO results-format entries (``image_id``, ``category_id``, ``bbox`` x, y, w, h,
    ``score``) of per-image detections; detections of unknown class names are left out."""
    results: list[dict[str, Any]] = []
    ignored: dict[str, int] = {}
    for image_id, dets in detections.items():
        for name in dets.names:
            if name not in category_ids_by_name:
                ignored[name] = ignored.get(name, 0) + 1
        results.extend(dets.to_coco(int(image_id), category_ids_by_name))
    if ignored:
        sample = ", ".join(f"{n!r}: {c}" for n, c in list(ignored.items())[:5])
        logger.warning(
            "ignored %d detections of classes the dataset does not have (%s%s)",
            sum(ignored.values()), sample, ", ..." if len(ignored) > 5 else "",
        )
    return results


def write_coco_results(path: str | Path, detections: Mapping[int, Detections], category_ids_by_name: Mapping[str, int]) -> Path:
    """Write ``detections_to_coco_results(...)`` as a COCO results JSON file; return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(detections_to_coco_results(detections, category_ids_by_name)))
    return path


def evaluate_coco(
    ann_file: "str | Path | COCO",
    detections: Mapping[int, Detections],
    *,
    classwise: bool = False,
    image_ids: Iterable[int] | None = None,
) -> dict[str, Any]:
    """COCO bbox metrics of ``detections`` ({image id: Detections in original pixels}).

    Images of the dataset missing from ``detections`` count as "nothing detected";
    pass ``image_ids`` to evaluate on a subset only. No detections at all give 0 (not
    a crash). Returns the 12 ``METRIC_NAMES`` as floats, plus ``classwise``:
    ``{class name: AP@[.5:.95]}`` (-1 for classes without ground truth) when asked.
    """
    gt = load_coco_gt(ann_file)
    known_ids = set(gt.getImgIds())
    unknown = sorted(set(int(i) for i in detections) - known_ids)
    if unknown:
        raise DatasetError(
            f"detections for image ids {unknown[:5]}{'...' if len(unknown) > 5 else ''} that the annotation "
            "file does not have: evaluate against the annotation file the images came from"
        )
    cat_ids = category_ids_by_name(gt)
    results = detections_to_coco_results(detections, cat_ids)
    return evaluate_results(gt, results, classwise=classwise, image_ids=image_ids)


def evaluate_results(
    ann_file: "str | Path | COCO",
    results: list[dict[str, Any]],
    *,
    classwise: bool = False,
    image_ids: Iterable[int] | None = None,
) -> dict[str, Any]:
    """COCO bbox metrics of COCO results-format entries (``image_id``, ``category_id``,
    ``bbox`` x, y, w, h, ``score``), as ``evaluate_coco`` returns them: the way to
    score a saved results file (``sdk test --out``) offline."""
    gt = load_coco_gt(ann_file)
    cat_ids = category_ids_by_name(gt)
    names_by_id = {v: k for k, v in cat_ids.items()}
    evaluator = _run_cocoeval(gt, load_results(gt, results), "bbox", image_ids, len(results))
    metrics: dict[str, Any] = {name: float(v) for name, v in zip(METRIC_NAMES, evaluator.stats)}
    if classwise:
        metrics["classwise"] = _classwise_ap(evaluator, names_by_id)
        logger.info("per-class AP@[.5:.95]:\n%s", format_classwise(metrics["classwise"]))
    if _has_masks(gt, results):
        # mask area, not box area, decides small / medium / large (detectron2 does the same)
        masks_only = [{k: v for k, v in r.items() if k != "bbox"} for r in results]
        segm = _run_cocoeval(gt, load_results(gt, masks_only, iou_type="segm"), "segm", image_ids, len(results))
        metrics.update({name: float(v) for name, v in zip(SEGM_METRIC_NAMES, segm.stats)})
        if classwise:
            metrics["segm_classwise"] = _classwise_ap(segm, names_by_id)
            logger.info("per-class mask AP@[.5:.95]:\n%s", format_classwise(metrics["segm_classwise"]))
    return metrics


def _run_cocoeval(gt: "COCO", dt: "COCO", iou_type: str, image_ids: Iterable[int] | None, count: int) -> Any:
    cocoeval_mod = require("pycocotools.cocoeval", extra="train", purpose="COCO evaluation")
    with contextlib.redirect_stdout(io.StringIO()) as captured:
        evaluator = cocoeval_mod.COCOeval(gt, dt, iouType=iou_type)
        if image_ids is not None:
            evaluator.params.imgIds = sorted(int(i) for i in image_ids)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    logger.info("COCO %s evaluation (%d detections):\n%s", iou_type, count, _summary_lines(captured.getvalue()))
    return evaluator


def _has_masks(gt: "COCO", results: list[dict[str, Any]]) -> bool:
    """Whether a mask evaluation applies: results with ``segmentation`` and ground truth
    whose every annotation has one (a box-only dataset cannot score masks)."""
    if not results or not all("segmentation" in r for r in results):
        return False
    anns = gt.dataset.get("annotations", [])
    missing = sum("segmentation" not in a for a in anns)
    if missing:
        logger.warning("no mask metrics: %d of %d annotations have no 'segmentation'", missing, len(anns))
    return bool(anns) and not missing


def read_results_file(path: str | Path) -> Any:
    """The parsed JSON of a COCO results file; ``DatasetError`` if missing or not JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DatasetError(f"results file not found: {path}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); expected a COCO results list") from exc


def load_results(gt: "COCO", results: "list[dict[str, Any]] | str | Path", *, iou_type: str = "bbox") -> "COCO":
    """A pycocotools results ``COCO`` of ``results`` (entries or a results JSON file),
    checked against ``gt``: every entry needs ``image_id``, ``category_id``, ``bbox``
    (``segmentation``, an RLE dict, for ``iou_type="segm"``) and ``score``, with image
    and category ids the annotation file has (``DatasetError`` naming the first bad
    entry otherwise). No entries: an empty one."""
    source = "results"
    if isinstance(results, (str, Path)):
        source, results = str(results), read_results_file(results)
    if not isinstance(results, list):
        raise DatasetError(f"{source}: a COCO results file is a JSON list of detections, got {type(results).__name__}")
    image_ids, cat_ids = set(gt.getImgIds()), set(gt.getCatIds())
    geometry = "bbox" if iou_type == "bbox" else "segmentation"
    for i, entry in enumerate(results):
        if not isinstance(entry, dict) or not {"image_id", "category_id", geometry, "score"} <= set(entry):
            raise DatasetError(f"{source}[{i}]: needs image_id, category_id, {geometry} and score: {str(entry)[:200]}")
        if geometry == "segmentation":
            seg = entry["segmentation"]
            if not isinstance(seg, dict) or not {"size", "counts"} <= set(seg):
                raise DatasetError(f"{source}[{i}]: segmentation must be an RLE dict with size and counts")
        else:
            bbox = entry["bbox"]
            if not isinstance(bbox, list) or len(bbox) != 4 or not all(isinstance(v, (int, float)) for v in bbox):
                raise DatasetError(f"{source}[{i}]: bbox must be 4 numbers [x, y, w, h], got {bbox!r}")
        if entry["image_id"] not in image_ids:
            raise DatasetError(
                f"{source}[{i}]: image_id {entry['image_id']} is not in the annotation file: evaluate against "
                "the annotation file the images came from"
            )
        if entry["category_id"] not in cat_ids:
            raise DatasetError(f"{source}[{i}]: category_id {entry['category_id']} is not in the annotation file")
    if not results:
        return _empty_results(gt)
    with contextlib.redirect_stdout(io.StringIO()):
        return gt.loadRes(copy.deepcopy(results))


def format_classwise(classwise: Mapping[str, float]) -> str:
    """A two-column text table of per-class AP."""
    width = max([len(n) for n in classwise] + [5])
    rows = [f"{'class':<{width}}  AP", *(f"{n:<{width}}  {ap:.3f}" for n, ap in classwise.items())]
    return "\n".join(rows)


def _empty_results(gt: "COCO") -> "COCO":
    """A results ``COCO`` with no detections (``loadRes`` cannot take an empty list)."""
    res = type(gt)()
    res.dataset = {"images": list(gt.dataset["images"]), "categories": copy.deepcopy(gt.dataset["categories"]), "annotations": []}
    with contextlib.redirect_stdout(io.StringIO()):
        res.createIndex()
    return res


def _classwise_ap(evaluator: Any, names_by_id: Mapping[int, str]) -> dict[str, float]:
    """AP@[.5:.95] per category, area "all", 100 detections (as mmdetection reports it)."""
    precision = evaluator.eval["precision"]  # [iou thresholds, recall points, categories, areas, max dets]
    out = {}
    for k, cat_id in enumerate(evaluator.params.catIds):
        p = precision[:, :, k, 0, -1]
        p = p[p > -1]
        out[names_by_id[cat_id]] = float(np.mean(p)) if p.size else -1.0
    return out


def _summary_lines(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if line.strip().startswith("Average"))
