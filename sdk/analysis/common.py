"""What the analysis tools share: a model over a COCO dataset, ground truth as
``Detections``, label spaces and matplotlib figures written atomically."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

import numpy as np

from sdk.detections import Detections

if TYPE_CHECKING:  # pragma: no cover
    from sdk.data.coco import CocoDetection

log = logging.getLogger(__name__)


def default_images_dir(ann_file: str | Path) -> Path:
    """``<ann_dir>/../images`` (the layout of ``sdk data`` and the synthetic dataset)."""
    return Path(ann_file).resolve().parent.parent / "images"


def open_dataset(ann_file: str | Path, images_dir: str | Path | None = None) -> "CocoDetection":
    """The ``CocoDetection`` of ``ann_file`` (validated), images under ``images_dir``
    (default ``<ann_dir>/../images``)."""
    from sdk.data.coco import CocoDetection

    return CocoDetection(ann_file, images_dir if images_dir is not None else default_images_dir(ann_file))


def predict_dataset(model: str | Path, dataset: "CocoDetection", *, device: str = "cpu", batch_size: int | None = None,
                    workers: int = 0, progress: bool = True, desc: str = "predict") -> dict[int, Detections]:
    """``{image_id: Detections}`` of ``model`` (checkpoint or model_dir, through
    ``sdk.Detector``, every detection the model returns) on every image of ``dataset``."""
    from sdk import Detector
    from sdk.engine.evaluate import run_inference

    detector = Detector(model, device=device, batch_size=batch_size)
    log.info("running %s on %s", detector, dataset)
    return run_inference(detector, dataset, batch_size=detector.batch_size, workers=workers, progress=progress,
                         desc=desc)


def class_names(dataset: "CocoDetection") -> list[str]:
    """The dataset's category names sorted by category id: the label space of the tools."""
    return list(dataset.categories.values())


def to_dataset_labels(dets: Detections, names: Sequence[str]) -> Detections:
    """``dets`` relabelled to indices of ``names`` (the dataset's classes, matched by
    name); detections of classes the dataset lacks are dropped."""
    index = {n: i for i, n in enumerate(names)}
    keep = np.array([n in index for n in dets.names], bool)
    labels = np.array([index[n] for n, k in zip(dets.names, keep) if k], np.int64)
    return Detections(dets.boxes[keep], dets.scores[keep], labels, tuple(names))


def ground_truth(dataset: "CocoDetection", index: int) -> Detections:
    """Image ``index``'s non-crowd boxes as ``Detections`` (score 1) in the dataset's
    label space (``class_names``), original pixels."""
    target = dataset.target(index)
    names = class_names(dataset)
    labels = [names.index(dataset.classes[int(label)]) for label in target["labels"]]
    return Detections(target["boxes"], np.ones(len(labels), np.float32), np.asarray(labels, np.int64), tuple(names))


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: str | Path, *, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (folders created; written beside it and renamed) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
    pyplot().close(fig)
    tmp.replace(path)
    return path


def write_csv(path: str | Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_json(path: str | Path, data: Mapping[str, Any] | list[Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for a table cell; ``-`` for None or NaN."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"
