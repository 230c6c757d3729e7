"""``sdk verify MODEL_DIR``: compare an exported model with its checkpoint."""

from __future__ import annotations

import argparse

from sdk.precision import DEFAULT_MAX_MAP_DROP
from sdk.cli.arguments import add_device_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "verify",
        help="check an exported model_dir against its checkpoint (matched boxes, score and mAP differences)",
        description="Run the eager checkpoint and the exported model_dir on the same images (with the model_dir's "
                    "preprocessing and thresholds) and report matched detections (IoU >= 0.99, same label), the "
                    "largest score difference and, with --dataset, both bbox mAPs, the mAP drop and the classes that lost "
                    "the most AP. Exit status 1 past the tolerance of the model_dir's precision (fp32 0.002, "
                    "fp16/bf16 0.005, int8 0.015 bbox mAP by default).",
    )
    p.add_argument("model_dir", help="exported model_dir (sdk export)")
    p.add_argument("--checkpoint", metavar="CKPT",
                   help="the SDK checkpoint to compare with (default: the one the model_dir was exported from, if it "
                        "is still there unchanged)")
    source = p.add_mutually_exclusive_group()
    source.add_argument("--images", metavar="DIR", help="folder of images to compare on")
    source.add_argument("--dataset", metavar="ANN_JSON", help="COCO annotation file: also compare bbox mAP")
    p.add_argument("--dataset-images", metavar="DIR",
                   help="folder the annotation file_names are relative to (default: <ann_dir>/../images)")
    p.add_argument("--max-images", type=int, default=50, help="at most this many images from --images (default 50)")
    p.add_argument("--max-map-drop", "--tolerance", dest="max_map_drop", type=float, metavar="D",
                   help="largest bbox mAP drop allowed (default by the model_dir's precision: "
                        + ", ".join(f"{k} {v}" for k, v in DEFAULT_MAX_MAP_DROP.items())
                        + "; fp32 fails a difference that large either way)")
    p.add_argument("--score-tolerance", type=float,
                   help="largest score difference of matched detections allowed (default 1e-3 for fp32; "
                        "reduced precisions report it without gating)")
    p.add_argument("--min-match", type=float,
                   help="smallest fraction of detections that must match (default 0.98 for fp32; reduced "
                        "precisions report it without gating)")
    add_device_argument(p, what="the model_dir and the checkpoint run")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from sdk.cli.test import default_images_dir
    from dataclasses import replace

    from sdk.engine.verify import Tolerance, format_report, load_image_folder, verify_model_dir
    from sdk.manifest import load_model_dir

    precision = load_model_dir(args.model_dir, verify_files=False).manifest.precision
    tolerance = Tolerance.for_precision(precision, max_map_drop=args.max_map_drop)
    overrides = {k: v for k, v in (("min_match_ratio", args.min_match), ("max_score_diff", args.score_tolerance))
                 if v is not None}
    tolerance = replace(tolerance, **overrides)
    images = load_image_folder(args.images, limit=args.max_images) if args.images else None
    dataset = None
    if args.dataset:
        dataset = (args.dataset, str(args.dataset_images or default_images_dir(args.dataset)))
    report = verify_model_dir(args.model_dir, checkpoint=args.checkpoint, images=images, dataset=dataset,
                              tolerance=tolerance, device=args.device, progress=not args.no_progress)
    print(format_report(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return 0 if report.passed else 1
