"""The corruption benchmark (MMDetection's ``test_robustness.py``): COCO bbox mAP of one or
more models on the dataset corrupted by each corruption at each severity.

Every image gets the same corruption for every model: the random stream of (corruption,
severity, image) is seeded from ``seed`` and their indices, so an int8 model_dir and its
fp32 checkpoint see identical pixels. Severity 0 is the clean image (the same pixels,
so its mAP equals the clean mAP). Reported per model: the clean mAP, mAP per
corruption and severity, ``mPC`` (the mean over corruptions and severities 1..5 asked
for) and ``rPC`` = mPC / clean mAP (Michaelis et al.).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sdk.analysis.common import pyplot, save_figure, write_csv, write_json
from sdk.analysis.corruptions import BENCHMARK, CORRUPTIONS, EXTRA, FAMILIES, corrupt, family_of
from sdk.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from sdk.data.coco import CocoDetection

log = logging.getLogger(__name__)


def resolve_corruptions(names: Sequence[str] | None) -> list[str]:
    """Corruption names from names and family names (``noise``, ``blur``, ``weather``,
    ``digital``, ``all``); default all 15 of the benchmark."""
    if not names:
        return list(BENCHMARK)
    out: list[str] = []
    for name in names:
        if name == "all":
            picked = list(BENCHMARK)
        elif name in FAMILIES:
            picked = list(FAMILIES[name])
        elif name in CORRUPTIONS:
            picked = [name]
        else:
            raise InputError(
                f"unknown corruption {name!r}; choose from the families {', '.join([*FAMILIES, 'all'])} or "
                f"{', '.join((*BENCHMARK, *EXTRA))}"
            )
        out += [p for p in picked if p not in out]
    return out


@dataclass
class ModelRobustness:
    model: str
    clean: dict[str, float]
    # corruption -> severity -> COCO metrics
    corrupted: dict[str, dict[int, dict[str, float]]] = field(default_factory=dict)

    def map_table(self, key: str = "bbox_mAP") -> dict[str, dict[int, float]]:
        return {c: {s: m[key] for s, m in sev.items()} for c, sev in self.corrupted.items()}

    def mpc(self, key: str = "bbox_mAP", family: str | None = None) -> float | None:
        """Mean over the corruptions (of ``family``) and severities 1..5 run."""
        values = [m[key] for name, sev in self.corrupted.items() for s, m in sev.items()
                  if s > 0 and (family is None or family_of(name) == family)]
        return float(np.mean(values)) if values else None

    def summary(self) -> dict[str, Any]:
        mpc = self.mpc()
        clean = self.clean["bbox_mAP"]
        return {
            "model": self.model,
            "clean_bbox_mAP": clean,
            "clean_bbox_mAP_50": self.clean["bbox_mAP_50"],
            "mPC": mpc,
            "rPC": (mpc / clean) if mpc is not None and clean > 0 else None,
            "mPC_by_family": {f: v for f in (*FAMILIES, "extra") if (v := self.mpc(family=f)) is not None},
            "bbox_mAP": {c: {str(s): v for s, v in sev.items()} for c, sev in self.map_table().items()},
            "bbox_mAP_50": {c: {str(s): v for s, v in sev.items()} for c, sev in self.map_table("bbox_mAP_50").items()},
        }


@dataclass
class RobustnessReport:
    corruptions: list[str]
    severities: list[int]
    images: int
    seed: int
    models: list[ModelRobustness]

    def to_dict(self) -> dict[str, Any]:
        return {"corruptions": self.corruptions, "severities": self.severities, "images": self.images,
                "seed": self.seed, "models": [m.summary() for m in self.models]}


def _seed(seed: int, corruption: str, severity: int, index: int) -> list[int]:
    return [seed, (BENCHMARK + EXTRA).index(corruption), severity, index]


def evaluate_on(detectors: Sequence[Any], dataset: "CocoDetection", indices: Sequence[int], *,
                corruption: str | None, severity: int, seed: int) -> list[dict[str, float]]:
    """COCO metrics of each detector on images ``indices`` of ``dataset``, corrupted
    (``corruption`` None: clean); each chunk of images is corrupted once for all."""
    from sdk.evaluation.coco_eval import evaluate_coco
    from sdk.preprocess import iter_chunks

    detections: list[dict[int, Any]] = [{} for _ in detectors]
    chunk_size = max(d.batch_size for d in detectors)
    for chunk in iter_chunks(list(indices), chunk_size):
        images = []
        for index in chunk:
            image = dataset.load_image(index)
            if corruption is not None:
                image = corrupt(image, corruption, severity, np.random.default_rng(_seed(seed, corruption, severity, index)))
            images.append(image)
        for detector, found in zip(detectors, detections):
            for index, dets in zip(chunk, detector(images, channel_order="rgb")):
                found[dataset.image_ids[index]] = dets
    image_ids = [dataset.image_ids[i] for i in indices]
    return [{k: float(v) for k, v in evaluate_coco(dataset.ann_file, found, image_ids=image_ids).items()
             if isinstance(v, float)} for found in detections]


def run_robustness(models: str | Path | Sequence[str | Path], dataset: "CocoDetection", *, corruptions: Sequence[str],
                   severities: Sequence[int], device: str = "cpu", batch_size: int | None = None,
                   max_images: int | None = None, seed: int = 0, progress: bool = True) -> RobustnessReport:
    """Evaluate each model clean and under every (corruption, severity)."""
    from tqdm import tqdm

    from sdk import Detector

    models = [models] if isinstance(models, (str, Path)) else list(models)
    indices = list(range(len(dataset) if max_images is None else min(max_images, len(dataset))))
    if not indices:
        raise InputError(f"{dataset.ann_file} has no images")
    detectors = [Detector(model, device=device, batch_size=batch_size) for model in models]
    steps = [(None, 0), *[(c, s) for c in corruptions for s in severities]]
    results: list[ModelRobustness] = []
    with tqdm(total=len(steps) * len(indices), desc="robustness", unit="img", disable=not progress,
              dynamic_ncols=True) as bar:
        for corruption, severity in steps:
            bar.set_postfix_str("clean" if corruption is None else f"{corruption} {severity}")
            metrics = evaluate_on(detectors, dataset, indices, corruption=corruption, severity=severity, seed=seed)
            if corruption is None:
                results = [ModelRobustness(str(model), m) for model, m in zip(models, metrics)]
            else:
                for result, m in zip(results, metrics):
                    result.corrupted.setdefault(corruption, {})[severity] = m
            bar.update(len(indices))
    for result in results:
        log.info("%s: clean bbox_mAP %.4f, mPC %s", result.model, result.clean["bbox_mAP"], result.mpc())
    return RobustnessReport(list(corruptions), list(severities), len(indices), seed, results)


def _labels(report: RobustnessReport) -> list[str]:
    names = [Path(m.model).name for m in report.models]
    return [str(Path(m.model)) if names.count(n) > 1 else n for m, n in zip(report.models, names)]


def plot_robustness(report: RobustnessReport, out: str | Path) -> Path:
    """Per family, mAP against severity of each corruption (one colour per corruption,
    one line style per model), the clean mAP at severity 0."""
    plt = pyplot()
    families = [f for f in (*FAMILIES, "extra") if any(family_of(c) == f for c in report.corruptions)]
    fig, axes = plt.subplots(1, len(families), figsize=(4.2 * len(families), 3.8), squeeze=False, sharey=True)
    styles = ["-", "--", ":", "-."]
    xs = [0, *[s for s in report.severities if s > 0]]
    for ax, family in zip(axes[0], families):
        names = [c for c in report.corruptions if family_of(c) == family]
        for m_i, (model, label) in enumerate(zip(report.models, _labels(report))):
            for c_i, name in enumerate(names):
                ys = [model.clean["bbox_mAP"], *[model.corrupted[name][s]["bbox_mAP"] for s in xs[1:]]]
                ax.plot(xs, ys, styles[m_i % len(styles)], color=f"C{c_i}", marker="o", markersize=3,
                        label=name if m_i == 0 else None)
        ax.set(title=family, xlabel="severity", xticks=xs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("bbox mAP")
    top = max([m.clean["bbox_mAP"] for m in report.models] + [0.05])
    axes[0][0].set_ylim(0, min(1.0, top * 1.1))
    summary = "; ".join(f"{label}{' (' + styles[i % 4] + ')' if len(report.models) > 1 else ''}: clean "
                        f"{m.clean['bbox_mAP']:.3f}, mPC {m.mpc():.3f}" if m.mpc() is not None else
                        f"{label}: clean {m.clean['bbox_mAP']:.3f}"
                        for i, (m, label) in enumerate(zip(report.models, _labels(report))))
    fig.suptitle(summary, fontsize=9)
    fig.tight_layout()
    return save_figure(fig, out)


def write_examples(dataset: "CocoDetection", report: RobustnessReport, out: str | Path, *, index: int = 0,
                   width: int = 200) -> Path:
    """One image under every corruption (rows) and severity (columns), as the model got it."""
    import cv2

    image = dataset.load_image(index)
    h = max(1, round(image.shape[0] * width / image.shape[1]))
    tiles = []
    for name in report.corruptions:
        row = []
        for severity in [s for s in report.severities if s > 0] or [0]:
            out_img = corrupt(image, name, severity, np.random.default_rng(_seed(report.seed, name, severity, index)))
            tile = cv2.resize(out_img, (width, h), interpolation=cv2.INTER_AREA)[:, :, ::-1].copy()
            cv2.putText(tile, f"{name} {severity}", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 2,
                        cv2.LINE_AA)
            cv2.putText(tile, f"{name} {severity}", (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            row.append(tile)
        tiles.append(np.concatenate(row, axis=1))
    out = Path(out)
    cv2.imwrite(str(out), np.concatenate(tiles, axis=0))
    return out


def write_robustness(report: RobustnessReport, out_dir: str | Path, dataset: "CocoDetection | None" = None) -> dict[str, Path]:
    """``robustness.json``, ``robustness.csv`` (model, corruption, severity, mAP, mAP50),
    ``robustness.png`` and, given the dataset, ``corruptions.jpg`` (examples)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for model in report.models:
        rows.append([model.model, "clean", "", 0, f"{model.clean['bbox_mAP']:.4f}", f"{model.clean['bbox_mAP_50']:.4f}"])
        for name, sev in model.corrupted.items():
            rows += [[model.model, name, family_of(name), s, f"{m['bbox_mAP']:.4f}", f"{m['bbox_mAP_50']:.4f}"]
                     for s, m in sev.items()]
    paths = {
        "json": write_json(out_dir / "robustness.json", report.to_dict()),
        "csv": write_csv(out_dir / "robustness.csv", ["model", "corruption", "family", "severity", "bbox_mAP",
                                                      "bbox_mAP_50"], rows),
        "png": plot_robustness(report, out_dir / "robustness.png"),
    }
    if dataset is not None:
        paths["examples"] = write_examples(dataset, report, out_dir / "corruptions.jpg")
    return paths


def format_robustness(report: RobustnessReport) -> str:
    lines = []
    for model, label in zip(report.models, _labels(report)):
        mpc = model.mpc()
        head = f"{label}: clean bbox_mAP {model.clean['bbox_mAP']:.3f}"
        if mpc is not None:
            head += f", mPC {mpc:.3f}, rPC {mpc / model.clean['bbox_mAP']:.3f}" if model.clean["bbox_mAP"] > 0 else \
                f", mPC {mpc:.3f}"
        families = {f: v for f in (*FAMILIES, "extra") if (v := model.mpc(family=f)) is not None}
        if mpc is not None:
            head += " (" + ", ".join(f"{f} {v:.3f}" for f, v in families.items()) + ")"
        lines.append(head)
        width = max(len(c) for c in report.corruptions)
        lines.append(f"  {'corruption':<{width}}  " + "  ".join(f"s{s:<4}" for s in report.severities))
        for name, sev in model.corrupted.items():
            lines.append(f"  {name:<{width}}  " + "  ".join(f"{sev[s]['bbox_mAP']:.3f}" for s in report.severities))
    return "\n".join(lines)
