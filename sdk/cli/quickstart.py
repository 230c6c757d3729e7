"""``sdk quickstart``: the whole loop on a synthetic dataset, on a CPU, in minutes.

Steps (each adds keys to ``OUT/summary.json``, rewritten after every step):

1. ``data``: synthesize the shapes dataset into ``OUT/data/`` (skipped when it is
   already there with the same generation parameters);
2. ``train``: train ``configs/quickstart_tiny.py`` into ``OUT/train/``;
3. ``evaluate``: COCO-evaluate ``OUT/train/best.pt`` on the val split through
   ``sdk.Detector`` (``bbox_mAP``, ``bbox_mAP_50``, ...);
4. ``draw``: draw its detections on a val image (``OUT/val_detections.jpg``);
5. ``export``: export it to ``OUT/model_dir`` (ONNX Runtime, ``model_dir`` in the summary);
6. ``verify_export``: COCO-evaluate the exported model next to the eager one
   (``export_bbox_mAP``, ``export_mAP_delta`` = exported - eager ``bbox_mAP``);
7. ``detect_exported``: run ``sdk.Detector(model_dir)`` on a val image.

``OUT`` belongs to the quickstart: a rerun replaces the checkpoints in ``OUT/train``
(``sdk train`` refuses to overwrite a work dir's checkpoints unless asked).
``--cfg-options`` shrinks or changes a run: ``synthetic.KEY=VALUE`` sets a dataset
generation parameter, any other key overrides the training config.

Adding a step (export, benchmark, ...) is adding a function ``step(ctx) -> dict`` to
``STEPS``; ``ctx.summary`` holds what earlier steps reported.
"""

from __future__ import annotations

import argparse
import json
import logging
import runpy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sdk.cli.arguments import add_device_argument

log = logging.getLogger(__name__)

CONFIG_NAME = "quickstart_tiny.py"


def default_config() -> Path:
    """The shipped ``quickstart_tiny.py``: package data of ``sdk.configs`` (a wheel
    install), else the ``configs/`` folder of a checkout whose environment predates it."""
    import importlib.util

    spec = importlib.util.find_spec("sdk.configs")
    if spec is not None and spec.origin:
        return Path(spec.origin).parent / CONFIG_NAME
    return Path(__file__).resolve().parents[2] / "configs" / CONFIG_NAME


@dataclass
class QuickstartContext:
    """What the steps share: the output folder, options and the summary so far."""

    out: Path
    config_path: Path
    device: str = "cpu"
    progress: bool = True
    cfg_options: tuple[str, ...] = ()  # "synthetic.KEY=VALUE" or training-config overrides
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.out / "data"

    @property
    def train_dir(self) -> Path:
        return self.out / "train"

    def write_summary(self) -> Path:
        path = self.out / "summary.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.summary, indent=2) + "\n")
        tmp.replace(path)
        return path


def split_options(options: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """``(synthetic overrides without the prefix, training-config overrides)``."""
    synthetic = [o.removeprefix("synthetic.") for o in options if o.startswith("synthetic.")]
    return synthetic, [o for o in options if not o.startswith("synthetic.")]


def synth_params(config_path: Path, overrides: list[str] = ()) -> dict[str, Any]:
    """The ``synthetic`` dict of the quickstart config file: the generation parameters
    of ``sdk.data.synthetic.generate_synthetic_coco`` (tuned together with the model),
    with ``KEY=VALUE`` ``overrides`` (Python literals) applied."""
    import ast

    from sdk.errors import ConfigError

    if not config_path.is_file():
        raise ConfigError(f"quickstart config not found: {config_path}; pass --config FILE")
    params = runpy.run_path(str(config_path)).get("synthetic")
    if not isinstance(params, dict):
        raise ConfigError(f"{config_path} must define `synthetic = dict(...)` (the dataset generation parameters)")
    for item in overrides:
        key, _, raw = item.partition("=")
        if key not in params:
            raise ConfigError(f"--cfg-options synthetic.{key}: unknown key; valid: {', '.join(sorted(params))}")
        try:
            params[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raise ConfigError(f"--cfg-options synthetic.{key}={raw}: not a Python literal") from None
    return json.loads(json.dumps(params))  # tuples -> lists, as in the stamp file


def step_data(ctx: QuickstartContext) -> dict[str, Any]:
    """Synthesize the dataset unless an identical one is already there."""
    from sdk.data.synthetic import generate_synthetic_coco

    params = synth_params(ctx.config_path, split_options(ctx.cfg_options)[0])
    stamp = ctx.data_dir / "params.json"
    train_json, val_json = ctx.data_dir / "annotations" / "train.json", ctx.data_dir / "annotations" / "val.json"
    reused = stamp.exists() and json.loads(stamp.read_text()) == params and train_json.exists() and val_json.exists()
    if reused:
        log.info("reusing the synthetic dataset in %s (same parameters)", ctx.data_dir)
    else:
        stamp.unlink(missing_ok=True)
        generate_synthetic_coco(ctx.data_dir, progress=ctx.progress, **params)
        stamp.write_text(json.dumps(params, indent=2) + "\n")
    return {"data": {"root": str(ctx.data_dir), "reused": reused, **params}}


def step_train(ctx: QuickstartContext) -> dict[str, Any]:
    """Train the tiny config on the synthetic data (paths and work dir overridden)."""
    from sdk.config import load_config
    from sdk.engine.trainer import TrainOptions, train

    data = ctx.data_dir
    cfg = load_config(ctx.config_path, [
        f"data.train_ann={data / 'annotations' / 'train.json'}",
        f"data.train_images={data / 'images'}",
        f"data.val_ann={data / 'annotations' / 'val.json'}",
        f"data.val_images={data / 'images'}",
        f"runtime.work_dir={ctx.train_dir}",
        f"runtime.device={ctx.device}",
        *split_options(ctx.cfg_options)[1],
    ])
    # OUT/train is the quickstart's own folder: a rerun retrains it from scratch.
    result = train(cfg, TrainOptions(progress=ctx.progress, overwrite=True))
    assert result is not None and result.best is not None  # one process, validation on
    return {
        "model": cfg.model.name,
        "epochs": result.epochs,
        "train_seconds": round(result.seconds, 1),
        "checkpoint": str(result.best),
        "train_best_mAP": result.best_map,
    }


def step_evaluate(ctx: QuickstartContext) -> dict[str, Any]:
    """COCO bbox metrics of the best checkpoint on the val split, through ``sdk.Detector``."""
    from sdk import Detector
    from sdk.engine.evaluate import evaluate_detector, format_metrics

    detector = Detector(ctx.summary["checkpoint"], device=ctx.device)
    ann, images = ctx.data_dir / "annotations" / "val.json", ctx.data_dir / "images"
    start = time.perf_counter()
    result = evaluate_detector(detector, str(ann), str(images), progress=ctx.progress)
    print(format_metrics(result.metrics))
    metrics = {k: round(float(v), 4) for k, v in result.metrics.items() if isinstance(v, (int, float))}
    return {**metrics, "eval_seconds": round(time.perf_counter() - start, 1)}


def step_draw(ctx: QuickstartContext) -> dict[str, Any]:
    """Draw the detections (score >= 0.5) of the best checkpoint on the first val image."""
    import cv2

    from sdk import Detector

    ann = json.loads((ctx.data_dir / "annotations" / "val.json").read_text())
    image_path = ctx.data_dir / "images" / ann["images"][0]["file_name"]
    detections = Detector(ctx.summary["checkpoint"], device=ctx.device, score_thr=0.5)(str(image_path))
    out = ctx.out / "val_detections.jpg"
    cv2.imwrite(str(out), detections.plot(str(image_path)))
    return {"val_detections_image": str(out), "val_detections_count": len(detections)}


def step_export(ctx: QuickstartContext) -> dict[str, Any]:
    """Export the best checkpoint to ``OUT/model_dir`` (ONNX Runtime backend and flavor)."""
    from sdk.converters.export import ExportOptions, export_checkpoint

    model_dir = export_checkpoint(ctx.summary["checkpoint"], ctx.out / "model_dir", ExportOptions())
    return {"model_dir": str(model_dir)}


def step_verify_export(ctx: QuickstartContext) -> dict[str, Any]:
    """COCO-evaluate the exported model on the val split next to the eager checkpoint
    (``sdk verify --dataset``): matched detections, score and mAP differences."""
    from sdk.engine.verify import format_report, verify_model_dir

    ann, images = ctx.data_dir / "annotations" / "val.json", ctx.data_dir / "images"
    report = verify_model_dir(ctx.summary["model_dir"], checkpoint=ctx.summary["checkpoint"],
                              dataset=(str(ann), str(images)), device=ctx.device, progress=ctx.progress)
    print(format_report(report))
    return {
        "export_bbox_mAP": round(float(report.export_mAP), 4),
        "export_mAP_delta": round(float(report.export_mAP) - float(ctx.summary["bbox_mAP"]), 4),
        "export_match_ratio": round(report.match_ratio, 4),
        "export_max_score_diff": float(report.max_score_diff),
        "export_verified": report.passed,
    }


def step_detect_exported(ctx: QuickstartContext) -> dict[str, Any]:
    """Run ``sdk.Detector(model_dir)`` (ONNX Runtime, no torch needed) on the first val image."""
    from sdk import Detector

    ann = json.loads((ctx.data_dir / "annotations" / "val.json").read_text())
    image_path = ctx.data_dir / "images" / ann["images"][0]["file_name"]
    detections = Detector(ctx.summary["model_dir"], device=ctx.device, score_thr=0.3)(str(image_path))
    return {"export_val_detections_count": len(detections)}


Step = Callable[[QuickstartContext], dict[str, Any]]
STEPS: list[tuple[str, Step]] = [
    ("data", step_data),
    ("train", step_train),
    ("evaluate", step_evaluate),
    ("draw", step_draw),
    ("export", step_export),
    ("verify_export", step_verify_export),
    ("detect_exported", step_detect_exported),
]


def run_quickstart(ctx: QuickstartContext, steps: list[tuple[str, Step]] = STEPS) -> dict[str, Any]:
    """Run ``steps`` in order; ``summary.json`` is rewritten after each one."""
    ctx.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    ctx.summary.setdefault("step_seconds", {})
    for name, step in steps:
        log.info("quickstart step: %s", name)
        t0 = time.perf_counter()
        ctx.summary.update(step(ctx))
        ctx.summary["step_seconds"][name] = round(time.perf_counter() - t0, 1)
        ctx.summary["total_seconds"] = round(time.perf_counter() - start, 1)
        ctx.write_summary()
    return ctx.summary


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "quickstart",
        help="synthesize a dataset, train a tiny detector, evaluate, export and verify it (CPU, minutes)",
        description="Synthesize the shapes dataset, train configs/quickstart_tiny.py on it, evaluate the best "
                    "checkpoint, draw its detections, export it to ONNX Runtime and verify the export. "
                    "Results: OUT/summary.json.",
    )
    p.add_argument("--out", default="runs/quickstart", help="output folder (default runs/quickstart)")
    p.add_argument("--config", default=None,
                   help="training config with a `synthetic` dict (default: the shipped quickstart_tiny.py)")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="synthetic.KEY=VALUE sets a dataset parameter (e.g. synthetic.num_train=64); other keys "
                        "override the training config (e.g. schedule.epochs=1)")
    add_device_argument(p, what="training, export and inference run")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)
    p.epilog = "OUT belongs to the quickstart: a rerun retrains OUT/train from scratch, replacing its checkpoints."


def run(args: argparse.Namespace) -> int:
    ctx = QuickstartContext(out=Path(args.out), config_path=Path(args.config) if args.config else default_config(),
                            device=args.device, progress=not args.no_progress, cfg_options=tuple(args.cfg_options))
    summary = run_quickstart(ctx)
    print(f"quickstart done in {summary['total_seconds']:.0f} s: bbox_mAP {summary['bbox_mAP']:.3f}, "
          f"bbox_mAP_50 {summary['bbox_mAP_50']:.3f}; exported model {summary['model_dir']} bbox_mAP "
          f"{summary['export_bbox_mAP']:.3f} (delta {summary['export_mAP_delta']:+.4f}); "
          f"summary in {ctx.out / 'summary.json'}")
    return 0
