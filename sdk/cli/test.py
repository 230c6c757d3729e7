"""``sdk test MODEL --dataset ANN_JSON``: COCO-evaluate a checkpoint or an exported model_dir."""

from __future__ import annotations

import argparse
from pathlib import Path

from sdk.cli.arguments import add_device_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "test",
        help="evaluate a checkpoint or model_dir on a COCO dataset (bbox mAP; segm mAP for mask models)",
        description="Run MODEL (an SDK .pt checkpoint or an exported model_dir, through sdk.Detector, so every "
                    "backend is scored by the same code) over a COCO dataset and print the twelve COCO bbox numbers "
                    "(and the twelve segm numbers for an instance segmentation model on a dataset with masks).",
    )
    p.add_argument("model", help="SDK .pt checkpoint or model_dir")
    p.add_argument("--dataset", required=True, metavar="ANN_JSON", help="COCO instances annotation file")
    p.add_argument("--images", metavar="DIR",
                   help="folder the annotation file_names are relative to (default: <ann_dir>/../images)")
    p.add_argument("--out", metavar="RESULTS_JSON",
                   help="write the detections in COCO results format (with RLE 'segmentation' for mask models)")
    p.add_argument("--format-only", action="store_true",
                   help="only write the detections (--out) without evaluating: for datasets without ground truth "
                        "(a test server's split, `sdk data images2coco`); score them later with `sdk analyze eval`")
    p.add_argument("--metrics-out", metavar="JSON", help="write the metrics as JSON")
    p.add_argument("--classwise", action="store_true", help="also print the AP of every category")
    p.add_argument("--show-dir", metavar="DIR", help="draw the detections on every image into DIR")
    p.add_argument("--show-score-thr", type=float, default=0.3, help="score threshold of the drawings (default 0.3)")
    p.add_argument("--score-thr", type=float, default=None,
                   help="drop detections scoring below this before evaluation (default: keep all the model returns)")
    p.add_argument("--batch-size", type=int, default=None, help="images per inference call (default: the model's maximum)")
    p.add_argument("--workers", type=int, default=2, help="image-decoding worker processes (default 2)")
    add_device_argument(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def default_images_dir(ann_file: str | Path) -> Path:
    """``<ann_dir>/../images`` (the layout of ``sdk data`` and the synthetic dataset)."""
    return Path(ann_file).resolve().parent.parent / "images"


def run(args: argparse.Namespace) -> int:
    import logging

    from sdk import Detector
    from sdk.data.coco import CocoDetection
    from sdk.engine.evaluate import format_metrics, run_inference
    from sdk.evaluation.coco_eval import detections_to_coco_results, evaluate_coco, format_classwise

    if not getattr(args, "verbose", False):  # the tables below say it all; keep pycocotools' copy out
        logging.getLogger("sdk.evaluation.coco_eval").setLevel(logging.WARNING)
    if args.format_only and not args.out:
        from sdk.errors import InputError

        raise InputError("--format-only writes the detections and nothing else: give the file with --out RESULTS_JSON")
    images_dir = Path(args.images) if args.images else default_images_dir(args.dataset)
    dataset = CocoDetection(args.dataset, images_dir)  # validates the file before the model loads
    detector = Detector(args.model, device=args.device, score_thr=args.score_thr, batch_size=args.batch_size)
    print(f"evaluating {detector} on {dataset}")
    detections = run_inference(detector, dataset, batch_size=detector.batch_size, workers=args.workers,
                               progress=not args.no_progress)
    metrics = None
    if not args.format_only:
        metrics = evaluate_coco(args.dataset, detections, classwise=args.classwise)
        print(format_metrics(metrics))
        if args.classwise and metrics.get("classwise"):
            print(format_classwise(metrics["classwise"]))
        if args.classwise and metrics.get("segm_classwise"):
            print("mask (segm) " + format_classwise(metrics["segm_classwise"]))
    if args.out:
        results = detections_to_coco_results(detections, dataset.category_ids_by_name)
        _write_json(Path(args.out), results)
        print(f"wrote {len(results)} detections to {args.out}" + (" (not evaluated: --format-only)" if args.format_only else ""))
    if args.metrics_out and metrics is not None:
        _write_json(Path(args.metrics_out), metrics)
    if args.show_dir:
        draw_all(dataset, detections, Path(args.show_dir), score_thr=args.show_score_thr)
        print(f"drew {len(dataset)} images into {args.show_dir}")
    return 0


def draw_all(dataset, detections, show_dir: Path, *, score_thr: float) -> None:
    """Write each image with its detections (score >= ``score_thr``) under ``show_dir``,
    at the annotation file's relative path."""
    import cv2

    for index, image_id in enumerate(dataset.image_ids):
        out = show_dir / dataset.image_entry(index).file_name
        out.parent.mkdir(parents=True, exist_ok=True)
        rgb = dataset.load_image(index)
        cv2.imwrite(str(out), detections[image_id].plot(rgb, score_thr=score_thr, channel_order="rgb"))


def _write_json(path: Path, data) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=None if isinstance(data, list) else 2) + "\n")
