"""Does an exported model_dir still detect what its checkpoint detects?

``verify_model_dir`` runs the eager checkpoint and the exported model on the same
images and compares them detection by detection: a detection is *matched* when the
other side has one of the same label with IoU >= ``match_iou`` or all coordinates
within half a pixel (greedy, best score first). With a COCO dataset it also scores both with the same evaluation code
(``sdk.engine.evaluate``) and compares the bbox mAPs.

The eager reference is built with the model_dir's preprocessing and thresholds (its
static canvas, its baked ``score_thr`` / ``iou_thr`` / ``max_det``), so every
difference reported is the export's, not a changed setting's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdk.data.synthetic import synthetic_images
from sdk.detections import Detections
from sdk.errors import ConfigError
from sdk.images import IMAGE_SUFFIXES, list_image_folder, load_image
from sdk.precision import default_max_map_drop



@dataclass(frozen=True)
class Tolerance:
    """Pass criteria of the accuracy gate.

    A detection is matched when the other side has one of the same label with IoU >=
    ``match_iou``. The export passes when at least ``min_match_ratio`` of the detections
    match, matched scores differ by at most ``max_score_diff`` (either may be ``None``:
    reported, not gated), and, with a dataset, the bbox mAP drop (eager minus exported)
    is at most ``max_map_drop``; ``two_sided`` also fails a *gain* that large (an fp32
    graph must not differ either way).
    """

    match_iou: float = 0.99
    min_match_ratio: float | None = 0.98
    max_score_diff: float | None = 1e-3
    max_map_drop: float = 0.002
    two_sided: bool = True

    @classmethod
    def for_precision(cls, precision: str, *, max_map_drop: float | None = None) -> "Tolerance":
        """The default gate of ``precision`` (``sdk.precision.DEFAULT_MAX_MAP_DROP``).

        fp32 compares detection by detection (IoU 0.99, scores within 1e-3, 98% matched)
        and the mAP both ways. Reduced precisions move boxes and scores a little by
        design: their gate is the one-sided mAP drop, and the match rate (IoU >= 0.5,
        same label) and score drift are reported beside it.
        """
        drop = default_max_map_drop(precision) if max_map_drop is None else float(max_map_drop)
        if drop < 0:
            raise ConfigError(f"--max-map-drop must be >= 0, got {drop}")
        if precision == "fp32":
            return cls(max_map_drop=drop)
        return cls(match_iou=0.5, min_match_ratio=None, max_score_diff=None, max_map_drop=drop, two_sided=False)


@dataclass
class VerifyReport:
    """What ``verify_model_dir`` found (counts over all images)."""

    num_images: int
    eager_detections: int
    export_detections: int
    matched: int
    max_score_diff: float
    tolerance: Tolerance
    eager_mAP: float | None = None
    export_mAP: float | None = None
    precision: str = "fp32"
    classwise_drop: dict[str, float] = field(default_factory=dict)  # class -> eager AP - exported AP
    failures: list[str] = field(default_factory=list)

    @property
    def match_ratio(self) -> float:
        total = max(self.eager_detections, self.export_detections)
        return 1.0 if total == 0 else self.matched / total

    @property
    def mAP_delta(self) -> float | None:
        if self.eager_mAP is None or self.export_mAP is None:
            return None
        return self.export_mAP - self.eager_mAP

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_images": self.num_images,
            "eager_detections": self.eager_detections,
            "export_detections": self.export_detections,
            "matched": self.matched,
            "match_ratio": self.match_ratio,
            "max_score_diff": self.max_score_diff,
            "eager_bbox_mAP": self.eager_mAP,
            "export_bbox_mAP": self.export_mAP,
            "mAP_delta": self.mAP_delta,
            "precision": self.precision,
            "max_map_drop": self.tolerance.max_map_drop,
            "classwise_AP_drop": dict(self.classwise_drop),
            "passed": self.passed,
            "failures": list(self.failures),
        }


def match_detections(a: Detections, b: Detections, *, iou: float = 0.99, pixels: float = 0.5) -> tuple[int, float]:
    """Greedy one-to-one matching of ``a`` to ``b`` (same label, and IoU >= ``iou`` or
    every coordinate within ``pixels`` (so degenerate boxes clipped to an image edge,
    IoU 0/0, match too), ``a`` best score first). Returns ``(matched count, max |score
    difference| of the pairs)``."""
    if len(a) == 0 or len(b) == 0:
        return 0, 0.0
    ious = _box_iou(a.boxes, b.boxes)
    close = np.abs(a.boxes[:, None, :] - b.boxes[None, :, :]).max(axis=2) <= pixels
    ious[close] = np.maximum(ious[close], 1.0)
    ious[a.labels[:, None] != b.labels[None, :]] = -1.0
    taken = np.zeros(len(b), bool)
    matched, max_diff = 0, 0.0
    for i in np.argsort(-a.scores, kind="stable"):
        candidates = np.where(~taken & (ious[i] >= iou))[0]
        if candidates.size == 0:
            continue
        j = candidates[np.argmax(ious[i, candidates])]
        taken[j] = True
        matched += 1
        max_diff = max(max_diff, abs(float(a.scores[i]) - float(b.scores[j])))
    return matched, max_diff


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-12)


def load_image_folder(folder: str | os.PathLike, *, limit: int | None = None) -> list[np.ndarray]:
    """RGB images of ``folder`` (sorted by name, at most ``limit``)."""
    if not Path(folder).is_dir():
        raise ConfigError(f"--images {folder} is not a folder of images")
    paths = list_image_folder(folder)
    if not paths:
        raise ConfigError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return [load_image(str(p)) for p in paths[:limit]]


def default_checkpoint(model_dir: str | os.PathLike) -> Path:
    """The checkpoint the model_dir was exported from, if it is still there unchanged."""
    from sdk.converters.export import read_export_info
    from sdk.manifest import load_model_dir, sha256_file

    manifest = load_model_dir(model_dir).manifest
    source = read_export_info(model_dir).get("source_checkpoint")
    if source and Path(source).is_file() and sha256_file(Path(source)) == manifest.source_checkpoint_sha256:
        return Path(source)
    where = f"{source} is missing or changed since the export" if source else "the model_dir does not record it"
    raise ConfigError(f"no checkpoint to verify {model_dir} against ({where}); pass --checkpoint CKPT")


def eager_reference(checkpoint: str | os.PathLike, model_dir: str | os.PathLike, *, device: str = "cpu"):
    """``EagerPredictor`` of ``checkpoint`` with ``model_dir``'s preprocessing and thresholds."""
    from dataclasses import replace

    from sdk.checkpoint import build_model_from_checkpoint, load_checkpoint
    from sdk.engine.evaluate import EagerPredictor
    from sdk.manifest import load_model_dir

    manifest = load_model_dir(model_dir).manifest
    loaded = load_checkpoint(checkpoint)
    if tuple(loaded.meta.classes) != tuple(manifest.classes):
        raise ConfigError(f"{checkpoint} and {model_dir} have different classes: not the same model")
    meta = replace(loaded.meta, preprocess=manifest.preprocess, postprocess=dict(manifest.postprocess))
    model, _ = build_model_from_checkpoint(replace(loaded, meta=meta), device=device)
    return EagerPredictor(model, preprocess=manifest.preprocess, classes=manifest.classes,
                          max_det=int(manifest.postprocess["max_det"]), device=device)


def verify_model_dir(
    model_dir: str | os.PathLike,
    *,
    checkpoint: str | os.PathLike | None = None,
    images: Sequence[np.ndarray] | None = None,
    dataset: tuple[str, str] | None = None,
    tolerance: Tolerance | None = None,
    device: str = "cpu",
    batch_size: int | None = None,
    progress: bool = False,
) -> VerifyReport:
    """Compare ``model_dir`` with its checkpoint on ``images`` (RGB arrays) or on a COCO
    ``dataset`` = (annotation file, images folder); default 8 synthetic images.
    ``tolerance`` defaults to the gate of the model_dir's precision (``Tolerance.for_precision``)."""
    from sdk import Detector

    from sdk.manifest import load_model_dir

    checkpoint = Path(checkpoint) if checkpoint else default_checkpoint(model_dir)
    precision = load_model_dir(model_dir, verify_files=False).manifest.precision
    tolerance = tolerance or Tolerance.for_precision(precision)
    eager = eager_reference(checkpoint, model_dir, device=device)
    exported = Detector(model_dir, device=device, batch_size=batch_size)
    batch = exported.batch_size
    eager_map = export_map = None
    classwise_drop: dict[str, float] = {}
    if dataset is not None:
        from sdk.data.coco import CocoDetection
        from sdk.engine.evaluate import run_inference
        from sdk.evaluation.coco_eval import evaluate_coco

        ann_file, images_dir = dataset
        coco = CocoDetection(ann_file, images_dir)
        eager_dets = run_inference(eager, coco, batch_size=batch, progress=progress, desc="eager")
        export_dets = run_inference(exported, coco, batch_size=batch, progress=progress, desc="exported")
        eager_metrics = evaluate_coco(ann_file, eager_dets, classwise=True)
        export_metrics = evaluate_coco(ann_file, export_dets, classwise=True)
        eager_map, export_map = float(eager_metrics["bbox_mAP"]), float(export_metrics["bbox_mAP"])
        classwise_drop = {name: ap - export_metrics["classwise"][name]
                          for name, ap in eager_metrics["classwise"].items() if ap >= 0}
        pairs = [(eager_dets[i], export_dets[i]) for i in coco.image_ids]
    else:
        images = list(images) if images is not None else synthetic_images(8)
        pairs = []
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            pairs += zip(eager(chunk, channel_order="rgb"), exported(chunk, channel_order="rgb"))

    matched, max_diff = 0, 0.0
    for a, b in pairs:
        m, d = match_detections(a, b, iou=tolerance.match_iou)
        matched, max_diff = matched + m, max(max_diff, d)
    report = VerifyReport(
        num_images=len(pairs),
        eager_detections=sum(len(a) for a, _ in pairs),
        export_detections=sum(len(b) for _, b in pairs),
        matched=matched,
        max_score_diff=max_diff,
        tolerance=tolerance,
        eager_mAP=eager_map,
        export_mAP=export_map,
        precision=precision,
        classwise_drop=classwise_drop,
    )
    report.failures += gate_failures(report)
    return report


def gate_failures(report: VerifyReport) -> list[str]:
    """What of ``report`` is past its tolerance, one phrase each (empty: passed)."""
    tol, failures = report.tolerance, []
    if tol.min_match_ratio is not None and report.match_ratio < tol.min_match_ratio:
        failures.append(f"match ratio {report.match_ratio:.4f} < {tol.min_match_ratio}")
    if tol.max_score_diff is not None and report.max_score_diff > tol.max_score_diff:
        failures.append(f"max score difference {report.max_score_diff:.2e} > {tol.max_score_diff:.0e}")
    delta = report.mAP_delta
    if delta is not None:
        if -delta > tol.max_map_drop:
            failures.append(f"bbox mAP dropped by {-delta:.4f} ({report.eager_mAP:.4f} -> {report.export_mAP:.4f}), "
                            f"more than the {report.precision} tolerance {tol.max_map_drop}")
        elif tol.two_sided and delta > tol.max_map_drop:
            failures.append(f"bbox mAP differs by {delta:+.4f} ({report.eager_mAP:.4f} -> {report.export_mAP:.4f}), "
                            f"more than the {report.precision} tolerance {tol.max_map_drop} either way")
    return failures


def format_report(report: VerifyReport, *, worst_classes: int = 5) -> str:
    """A few human-readable lines: counts, match rate, score drift, mAPs, the classes
    that lost the most AP, and PASSED or FAILED with the reasons."""
    lines = [
        f"{report.precision} export: images {report.num_images}; detections eager {report.eager_detections}, "
        f"exported {report.export_detections}; matched {report.matched} "
        f"({report.match_ratio:.2%}, IoU >= {report.tolerance.match_iou}, same label)",
        f"max score difference of matched detections: {report.max_score_diff:.2e}",
    ]
    if report.mAP_delta is not None:
        lines.append(f"bbox mAP eager {report.eager_mAP:.4f}, exported {report.export_mAP:.4f}, "
                     f"delta {report.mAP_delta:+.4f} (allowed drop {report.tolerance.max_map_drop})")
    worst = sorted(report.classwise_drop.items(), key=lambda item: -item[1])[:worst_classes]
    if worst:
        lines.append("largest per-class AP drops: " + ", ".join(f"{name} {drop:+.4f}" for name, drop in worst))
    lines.append("PASSED" if report.passed else "FAILED: " + "; ".join(report.failures))
    return "\n".join(lines)
