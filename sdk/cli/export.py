"""``sdk export CKPT --backend onnxruntime --out DIR``: checkpoint -> self-contained model_dir."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to a self-contained model_dir (ONNX Runtime, TensorRT or AOTInductor)",
        description="Export an SDK .pt checkpoint (model, classes and preprocessing are read from it) into a "
                    "model_dir: the graph with preprocessing normalization, decoding and NMS inside, plus a hashed "
                    "manifest. Run it with sdk.Detector(DIR), `sdk infer`, `sdk test` or `sdk serve`.",
    )
    p.add_argument("checkpoint", help="SDK .pt checkpoint (sdk train / sdk convert)")
    p.add_argument("--out", required=True, metavar="DIR", help="model_dir to write")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "tensorrt", "aoti", "auto"),
                   help="runtime the model_dir is for (default onnxruntime); auto: TensorRT where it and a GPU "
                        "exist, else AOTInductor on CUDA, else ONNX Runtime")
    p.add_argument("--device", default=None,
                   help="cpu or cuda[:N]: what AOTInductor compiles for and what auto chooses by "
                        "(default: cuda when a GPU is visible, else cpu)")
    p.add_argument("--flavor", default="onnxruntime", choices=("onnxruntime", "tensorrt"),
                   help="ONNX lowering of NMS / RoIAlign: standard ONNX ops (onnxruntime, default) or "
                        "sdk:: TensorRT plugin nodes (tensorrt)")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch the model accepts (default 8)")
    p.add_argument("--input-size", metavar="HxW",
                   help="network input size (default: the checkpoint's letterbox size, or a square canvas for "
                        "keep_ratio models)")
    p.add_argument("--score-thr", type=float, help="score threshold baked into the graph (default: the checkpoint's)")
    p.add_argument("--iou-thr", type=float, help="NMS IoU threshold (default: the checkpoint's)")
    p.add_argument("--max-det", type=int, help="detections per image K (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--simplify", action="store_true", help="run onnxsim on the graph when it can")
    p.add_argument("--fp16", action="store_true",
                   help="half precision: TensorRT, or AOTInductor on CUDA (NMS and RoIAlign stay float32)")
    trt = p.add_argument_group("TensorRT build")
    trt.add_argument("--int8", action="store_true", help="allow INT8 (entropy calibration on --calib-images)")
    trt.add_argument("--calib-images", metavar="DIR", help="folder of representative images for --int8")
    trt.add_argument("--workspace", type=float, default=4.0, metavar="GB",
                     help="builder workspace memory limit (default %(default)s GB)")
    trt.add_argument("--timing-cache", metavar="FILE",
                     help="TensorRT timing cache: read when the file exists, written after the build")
    p.add_argument("--verify", action="store_true",
                   help="compare the exported model with the checkpoint on a few synthetic images")
    p.set_defaults(func=run)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"480x640"`` -> (480, 640); ``ConfigError`` otherwise."""
    from sdk.errors import ConfigError

    if text is None:
        return None
    parts = text.lower().split("x")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ConfigError(f"--input-size must look like HxW (e.g. 480x640), got {text!r}")
    return int(parts[0]), int(parts[1])


def run(args: argparse.Namespace) -> int:
    from sdk.converters.export import ExportOptions, export_checkpoint
    from sdk.manifest import load_model_dir

    postprocess = {k: v for k, v in (("score_thr", args.score_thr), ("iou_thr", args.iou_thr),
                                     ("max_det", args.max_det)) if v is not None}
    options = ExportOptions(
        backend=args.backend, flavor=args.flavor, max_batch=args.max_batch, input_size=parse_size(args.input_size),
        postprocess=postprocess, fp16=args.fp16, opset=args.opset, simplify=args.simplify, device=args.device,
        int8=args.int8, calib_images=args.calib_images, workspace_gb=args.workspace, timing_cache=args.timing_cache,
    )
    out = export_checkpoint(args.checkpoint, args.out, options)
    manifest = load_model_dir(out, verify_files=False).manifest
    print(f"exported {args.checkpoint} -> {out} ({manifest.backend}, {manifest.precision}, "
          f"max batch {args.max_batch})")
    if args.verify:
        from sdk.engine.verify import format_report, synthetic_images, verify_model_dir

        report = verify_model_dir(Path(out), checkpoint=Path(args.checkpoint), images=synthetic_images(4, seed=0))
        print(format_report(report))
        return 0 if report.passed else 1
    return 0
