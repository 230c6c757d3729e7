"""``sdk analyze``: MMDetection's analysis tools on any model the SDK runs.

    sdk analyze logs WORK_DIR... [--keys K...] [--out PNG]
    sdk analyze results MODEL --dataset ANN [--images DIR] --out DIR [--topk 20] [--score-thr 0.3]
    sdk analyze confusion MODEL --dataset ANN --out DIR [--iou-thr 0.5] [--score-thr 0.3]
    sdk analyze errors RESULTS.json --dataset ANN --out DIR
    sdk analyze robustness MODEL... --dataset ANN --out DIR [--corruptions ...] [--severities 1 2 3 4 5]
    sdk analyze eval RESULTS.json --dataset ANN [--classwise]

MODEL is an SDK ``.pt`` checkpoint or a model_dir of any backend and precision (run
through ``sdk.Detector``). Implementations: ``sdk.analysis``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from sdk.cli.arguments import add_device_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analysis tools: training curves, per-image AP, confusion matrix, COCO errors, robustness, offline eval",
        description="Analysis tools after training (MMDetection's useful tools). MODEL is a .pt checkpoint or a "
                    "model_dir of any backend and precision.",
    )
    actions = parser.add_subparsers(dest="analyze_command", metavar="TOOL")
    actions.required = True

    p = actions.add_parser("logs", help="plot curves of training logs (several runs overlaid) and training time",
                           description="Plot keys of WORK_DIR/log.jsonl (train keys per iteration, val keys per "
                                       "epoch; several runs overlaid) and print the training time per iteration "
                                       "and epoch (slowest, fastest, spread).")
    p.add_argument("runs", nargs="+", metavar="WORK_DIR", help="work dirs of `sdk train` (or their log.jsonl files)")
    p.add_argument("--keys", nargs="+", metavar="KEY",
                   help="keys to plot, e.g. loss loss_classification lr bbox_mAP bbox_mAP_50 (default: loss bbox_mAP)")
    p.add_argument("--out", default="log_curves.png", metavar="PNG", help="picture to write (default log_curves.png)")
    p.add_argument("--legend", nargs="+", metavar="NAME", help="one name per run (default: the work dir names)")
    p.add_argument("--title", help="title of the picture")
    p.add_argument("--time-json", metavar="JSON", help="also write the training-time summary as JSON")
    p.set_defaults(func=_logs)

    p = actions.add_parser("results", help="per-image AP; the best and worst images drawn (ground truth | predictions)",
                           description="Run MODEL on the dataset, compute every image's COCO AP@[.5:.95] "
                                       "(pycocotools), write OUT/per_image.csv and draw the TOPK best and worst "
                                       "images into OUT/best and OUT/worst, ground truth beside the predictions.")
    _model_dataset_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--topk", type=_positive_int, default=20, help="images drawn per list (default 20)")
    p.add_argument("--score-thr", type=_unit_float, default=0.3,
                   help="score threshold of the drawn predictions (AP uses all; default 0.3)")
    p.set_defaults(func=_results)

    p = actions.add_parser("confusion", help="confusion matrix with a background row and column (PNG and CSV)",
                           description="Run MODEL on the dataset and count, per ground-truth class (rows) and "
                                       "predicted class (columns), the detections overlapping ground truth, plus "
                                       "false positives on background (last row) and misses (last column). "
                                       "Writes OUT/confusion_matrix.csv and .png.")
    _model_dataset_args(p)
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--iou-thr", type=_unit_float, default=0.5, help="IoU that makes an overlap (default 0.5)")
    p.add_argument("--score-thr", type=_unit_float, default=0.3, help="detections scoring below are ignored (default 0.3)")
    p.add_argument("--nms-iou-thr", type=_unit_float, default=None,
                   help="apply per-class NMS at this IoU first (default: the model's own NMS only)")
    p.set_defaults(func=_confusion)

    p = actions.add_parser("errors", help="COCO error breakdown (C75, C50, Loc, Sim, Oth, BG, FN) as plots",
                           description="Analyze a COCO results file (`sdk test MODEL --dataset ANN --out "
                                       "RESULTS.json`) the way the COCO API's analyze() does: precision/recall "
                                       "curves at IoU .75 and .5, then forgiving localization, similar-class, "
                                       "other-class, background errors and misses, per class and overall.")
    p.add_argument("results", metavar="RESULTS.json", help="COCO results file (list of image_id, category_id, bbox, score)")
    p.add_argument("--dataset", required=True, metavar="ANN_JSON", help="COCO annotation file the results are for")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--no-class-plots", action="store_true", help="only the overall plots and the per-class bar chart")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_errors)

    p = actions.add_parser("robustness", help="mAP under image corruptions (noise, blur, weather, digital) x severities",
                           description="COCO-evaluate MODEL on the dataset with each corruption at each severity "
                                       "(the corruptions benchmark of Hendrycks & Dietterich / Michaelis et al.): "
                                       "mAP per corruption and severity, the mean over them (mPC) and its ratio "
                                       "to the clean mAP (rPC). Severity 0 is the clean image.")
    _model_dataset_args(p, several=True)
    p.add_argument("--out", required=True, metavar="DIR",
                   help="output folder (robustness.json, .csv, .png and corruptions.jpg, examples)")
    p.add_argument("--corruptions", nargs="+", metavar="NAME",
                   help="corruptions to run, or a family: noise, blur, weather, digital, all (default all)")
    p.add_argument("--severities", nargs="+", type=int, default=[1, 2, 3, 4, 5], metavar="S",
                   help="severities 0..5 (default 1 2 3 4 5; the clean mAP is always computed)")
    p.add_argument("--max-images", type=_positive_int, metavar="N", help="use the first N images only (quicker)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random corruptions (default 0)")
    p.set_defaults(func=_robustness)

    p = actions.add_parser("eval", help="evaluate a saved COCO results file offline",
                           description="COCO bbox metrics of a results file (e.g. `sdk test --out`) against an "
                                       "annotation file, without running a model.")
    p.add_argument("results", metavar="RESULTS.json", help="COCO results file")
    p.add_argument("--dataset", required=True, metavar="ANN_JSON", help="COCO annotation file")
    p.add_argument("--classwise", action="store_true", help="also print the AP of every category")
    p.add_argument("--metrics-out", metavar="JSON", help="write the metrics as JSON")
    p.set_defaults(func=_eval)


def _model_dataset_args(p: argparse.ArgumentParser, several: bool = False) -> None:
    if several:
        p.add_argument("model", nargs="+", metavar="MODEL",
                       help="SDK .pt checkpoints or model_dirs (any backend and precision), e.g. an int8 model_dir "
                            "and the fp32 checkpoint it came from: each sees the same corrupted images")
    else:
        p.add_argument("model", metavar="MODEL", help="SDK .pt checkpoint or model_dir (any backend and precision)")
    p.add_argument("--dataset", required=True, metavar="ANN_JSON", help="COCO annotation file")
    p.add_argument("--images", metavar="DIR", help="folder the file_names are relative to (default <ann_dir>/../images)")
    add_device_argument(p)
    p.add_argument("--batch-size", type=_positive_int, default=None, help="images per inference call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _unit_float(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {value}")
    return value


def _quiet_cocoeval(args: argparse.Namespace) -> None:
    import logging

    if not getattr(args, "verbose", False):
        logging.getLogger("sdk.evaluation.coco_eval").setLevel(logging.WARNING)


# -- tools ----------------------------------------------------------------------------
def _logs(args: argparse.Namespace) -> int:
    from sdk.analysis.common import write_json
    from sdk.analysis.logs import format_train_time, load_runs, plot_logs, train_time

    runs = load_runs(args.runs, args.legend)
    out = plot_logs(runs, args.keys, args.out, title=args.title)
    summaries = [train_time(run) for run in runs]
    for summary in summaries:
        print(format_train_time(summary))
    if args.time_json:
        write_json(args.time_json, {"runs": summaries})
    print(f"wrote {out}")
    return 0


def _results(args: argparse.Namespace) -> int:
    from sdk.analysis.common import open_dataset, predict_dataset, write_json
    from sdk.analysis.per_image import per_image_ap, write_report
    from sdk.evaluation.coco_eval import detections_to_coco_results

    dataset = open_dataset(args.dataset, args.images)
    detections = predict_dataset(args.model, dataset, device=args.device, batch_size=args.batch_size,
                                 progress=not args.no_progress)
    results = detections_to_coco_results(detections, dataset.category_ids_by_name)
    scores = per_image_ap(args.dataset, results)
    summary = write_report(dataset, detections, scores, args.out, topk=args.topk, score_thr=args.score_thr)
    write_json(Path(args.out) / "summary.json", summary)
    mean = summary["mean_image_ap"]
    print(f"{summary['ranked']} images ranked by AP@[.5:.95] (mean {mean:.3f})" if mean is not None
          else "no image has ground truth: nothing to rank")
    for label in ("best", "worst"):
        shown = ", ".join(f"{e['image_id']}:{e['ap']:.3f}" for e in summary[label][:5])
        print(f"  {label}: {shown}{' ...' if len(summary[label]) > 5 else ''}")
    print(f"wrote {args.out}/per_image.csv and the drawings in {args.out}/best, {args.out}/worst")
    return 0


def _confusion(args: argparse.Namespace) -> int:
    from sdk.analysis.common import class_names, open_dataset, predict_dataset
    from sdk.analysis.confusion import BACKGROUND, confusion_matrix, write_confusion

    dataset = open_dataset(args.dataset, args.images)
    detections = predict_dataset(args.model, dataset, device=args.device, batch_size=args.batch_size,
                                 progress=not args.no_progress)
    matrix = confusion_matrix(dataset, detections, iou_thr=args.iou_thr, score_thr=args.score_thr,
                              nms_iou_thr=args.nms_iou_thr)
    names = class_names(dataset)
    paths = write_confusion(matrix, names, args.out,
                            title=f"{Path(args.model).name}: IoU >= {args.iou_thr:g}, score >= {args.score_thr:g}")
    labels = [*names, BACKGROUND]
    width = max(len(n) for n in labels)
    corner = "gt / pred"
    width = max(width, len(corner))
    print(f"{corner:<{width}}  " + "  ".join(f"{n[:6]:>6}" for n in labels))
    for name, row in zip(labels, matrix):
        print(f"{name:<{width}}  " + "  ".join(f"{int(v):>6}" for v in row))
    print(f"wrote {paths['csv']} and {paths['png']}")
    return 0


def _errors(args: argparse.Namespace) -> int:
    from sdk.analysis.coco_errors import analyze_errors, format_breakdown, write_breakdown

    breakdown = analyze_errors(args.dataset, args.results, progress=not args.no_progress)
    table = write_breakdown(breakdown, args.out, per_class_plots=not args.no_class_plots)
    print("AP per error type (area all):")
    print(format_breakdown(table))
    print(f"wrote {args.out}/errors.json, errors.csv, overall-*.png, classes.png")
    return 0


def _robustness(args: argparse.Namespace) -> int:
    from sdk.analysis.common import open_dataset
    from sdk.analysis.robustness import format_robustness, resolve_corruptions, run_robustness, write_robustness
    from sdk.errors import InputError

    _quiet_cocoeval(args)
    corruptions = resolve_corruptions(args.corruptions)
    bad = [s for s in args.severities if not 0 <= s <= 5]
    if bad:
        raise InputError(f"--severities are 0..5 (0 = clean), got {bad}")
    dataset = open_dataset(args.dataset, args.images)
    report = run_robustness(args.model, dataset, corruptions=corruptions, severities=sorted(set(args.severities)),
                            device=args.device, batch_size=args.batch_size, max_images=args.max_images,
                            seed=args.seed, progress=not args.no_progress)
    paths = write_robustness(report, args.out, dataset)
    print(format_robustness(report))
    print(f"wrote {', '.join(str(p) for p in paths.values())}")
    return 0


def _eval(args: argparse.Namespace) -> int:
    import json

    from sdk.engine.evaluate import format_metrics
    from sdk.evaluation.coco_eval import evaluate_results, format_classwise, load_coco_gt, read_results_file

    _quiet_cocoeval(args)
    gt = load_coco_gt(args.dataset)
    results = read_results_file(args.results)
    metrics = evaluate_results(gt, results, classwise=args.classwise)  # checks the entries
    print(f"{len(results)} detections on {len(gt.getImgIds())} images")
    print(format_metrics(metrics))
    if args.classwise and metrics.get("classwise"):
        print(format_classwise(metrics["classwise"]))
    if args.metrics_out:
        out = Path(args.metrics_out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + "\n")
    return 0
