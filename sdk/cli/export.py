"""``sdk export CKPT --backend onnxruntime --out DIR``: checkpoint -> self-contained model_dir."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from sdk.cli.arguments import add_device_argument
from sdk.converters.calibration import DEFAULT_CALIB_COUNT
from sdk.precision import DEFAULT_MAX_MAP_DROP, PRECISIONS


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint to a self-contained model_dir (ONNX Runtime, OpenVINO, TensorRT or AOTInductor)",
        description="Export an SDK .pt checkpoint (model, classes and preprocessing are read from it) into a "
                    "model_dir: the graph with preprocessing normalization, decoding and NMS inside, plus a hashed "
                    "manifest. Run it with sdk.Detector(DIR), `sdk infer`, `sdk test` or `sdk serve`.",
    )
    p.add_argument("checkpoint", help="SDK .pt checkpoint (sdk train / sdk convert)")
    p.add_argument("--out", required=True, metavar="DIR", help="model_dir to write")
    p.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "openvino", "tensorrt", "aoti", "auto"),
                   help="runtime the model_dir is for (default onnxruntime); auto: TensorRT where it and a GPU "
                        "exist, else AOTInductor on CUDA; on a CPU OpenVINO for bf16/int8, else ONNX Runtime "
                        "(auto picks the backend, never the precision)")
    add_device_argument(p, allow_auto=True, what="the model_dir will run: what AOTInductor compiles for and "
                        "what --backend auto chooses by")
    p.add_argument("--flavor", default="onnxruntime", choices=("onnxruntime", "tensorrt"),
                   help="ONNX lowering of NMS / RoIAlign: standard ONNX ops (onnxruntime, default) or "
                        "sdk:: TensorRT plugin nodes (tensorrt)")
    p.add_argument("--max-batch", type=int, default=8, help="largest batch the model accepts (default 8)")
    p.add_argument("--input-size", metavar="HxW",
                   help="network input size (default: the checkpoint's letterbox size, or a square canvas for "
                        "keep_ratio models; see --dynamic-shape)")
    p.add_argument("--dynamic-shape", action="store_true",
                   help="keep_ratio models: a graph of any height and width (onnxruntime, openvino, tensorrt), "
                        "each image resized as torchvision does and padded to the divisor only, so detections "
                        "match torchvision's; without it, every image is padded to one static canvas")
    p.add_argument("--score-thr", type=float, help="score threshold baked into the graph (default: the checkpoint's)")
    p.add_argument("--iou-thr", type=float, help="NMS IoU threshold (default: the checkpoint's)")
    p.add_argument("--max-det", type=int, help="detections per image K (default: the checkpoint's)")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--simplify", action="store_true", help="run onnxsim on the graph when it can")
    p.add_argument("--sign", metavar="KEY",
                   help="sign the manifest with this Ed25519 private key (PEM from `sdk keygen`), writing "
                        "manifest.sig; runtimes given the public key (Detector trusted_keys, sdk serve "
                        "--trusted-keys) refuse unsigned or modified model_dirs")
    precision = p.add_argument_group("precision (baked into the exported graph, recorded in the manifest)")
    precision.add_argument("--precision", choices=PRECISIONS, default=None,
                           help="fp32 (default); fp16: the network in float16, decoding/NMS/RoIAlign float32; "
                                "bf16: OpenVINO's bfloat16 (CPUs with AVX512_BF16/AMX); int8: QDQ static "
                                "quantization calibrated on --calib-images or --calib-dataset")
    precision.add_argument("--fp16", action="store_true", help="same as --precision fp16")
    precision.add_argument("--int8", action="store_true", help="same as --precision int8")
    precision.add_argument("--calib-images", metavar="DIR", help="int8: folder of representative images")
    precision.add_argument("--calib-dataset", metavar="ANN_JSON",
                           help="int8: COCO annotation file whose images to calibrate on (<ann_dir>/../images)")
    precision.add_argument("--calib-count", type=int, default=DEFAULT_CALIB_COUNT, metavar="N",
                           help="int8: calibrate on at most N images (default %(default)s)")
    precision.add_argument("--int8-float-outputs", action="store_true",
                           help="int8: keep the class/box predictor layers float32, for a model that fails the "
                                "accuracy gate with them quantized (slower)")
    trt = p.add_argument_group("TensorRT build")
    trt.add_argument("--workspace", type=float, default=4.0, metavar="GB",
                     help="builder workspace memory limit (default %(default)s GB)")
    trt.add_argument("--timing-cache", metavar="FILE",
                     help="TensorRT timing cache: read when the file exists, written after the build")
    gate = p.add_argument_group("accuracy gate")
    gate.add_argument("--verify", action="store_true",
                      help="compare the export with the checkpoint before keeping it: with --verify-dataset (or the "
                           "int8 --calib-dataset) the bbox mAP drop must stay within --max-map-drop; fp32 without a "
                           "dataset compares detections on a few synthetic images. A failed export leaves no model_dir")
    gate.add_argument("--verify-dataset", metavar="ANN_JSON", help="COCO annotation file for the --verify mAP gate")
    gate.add_argument("--max-map-drop", type=float, metavar="D",
                      help="largest bbox mAP drop allowed by --verify (default by precision: "
                           + ", ".join(f"{k} {v}" for k, v in DEFAULT_MAX_MAP_DROP.items()) + ")")
    p.set_defaults(func=run)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """``"480x640"`` -> (480, 640); ``ConfigError`` otherwise."""
    from sdk.errors import ConfigError

    from sdk.cli.arguments import parse_hw

    if text is None:
        return None
    try:
        return parse_hw(text)
    except ValueError as exc:
        raise ConfigError(f"--input-size: {exc}") from None


def resolve_precision(args: argparse.Namespace) -> str:
    """``--precision``, or the one its alias ``--fp16`` / ``--int8`` names; ``ConfigError`` when they disagree."""
    from sdk.errors import ConfigError

    named = {p for p, flag in (("fp16", args.fp16), ("int8", args.int8)) if flag}
    if args.precision:
        named.add(args.precision)
    if len(named) > 1:
        raise ConfigError(f"conflicting precisions {sorted(named)}: give one --precision")
    return named.pop() if named else "fp32"


def run(args: argparse.Namespace) -> int:
    from sdk.converters.export import ExportOptions, check_backend_precision, export_checkpoint, resolve_backend
    from sdk.converters.publish import publish_model_dir, staging_dir
    from sdk.manifest import load_model_dir

    postprocess = {k: v for k, v in (("score_thr", args.score_thr), ("iou_thr", args.iou_thr),
                                     ("max_det", args.max_det)) if v is not None}
    options = ExportOptions(
        backend=args.backend, precision=resolve_precision(args), flavor=args.flavor, max_batch=args.max_batch,
        input_size=parse_size(args.input_size), dynamic_shape=args.dynamic_shape, postprocess=postprocess, opset=args.opset, simplify=args.simplify,
        device=None if args.device == "auto" else args.device, calib_images=args.calib_images, calib_dataset=args.calib_dataset,
        calib_count=args.calib_count, int8_float_outputs=args.int8_float_outputs, workspace_gb=args.workspace, timing_cache=args.timing_cache,
    )
    options = resolve_backend(options)
    check_backend_precision(options.backend, options.precision)
    dataset = args.verify_dataset or (args.calib_dataset if options.precision == "int8" else None)
    if args.verify:
        check_gate_data(options.precision, dataset)
    if not args.verify:
        out = export_checkpoint(args.checkpoint, args.out, options, sign_key=args.sign)
        print(_exported_line(args, out, load_model_dir(out, verify_files=False).manifest))
        return 0
    with staging_dir(Path(args.out)) as staging:
        export_checkpoint(args.checkpoint, staging, options, sign_key=args.sign)
        manifest = load_model_dir(staging, verify_files=False).manifest
        print(_exported_line(args, Path(args.out), manifest))
        report = verify_export(staging, Path(args.checkpoint), manifest.precision, dataset, args.max_map_drop)
        if not report.passed:
            int8_hint = ("--int8-float-outputs, " if manifest.precision == "int8" and not args.int8_float_outputs
                         else "")
            print(f"error: the {manifest.precision} export failed the accuracy gate, so no model_dir was written to "
                  f"{args.out}; try a larger --calib-count, {int8_hint}another precision, or --max-map-drop if the "
                  "drop is acceptable", file=sys.stderr)
            return 1
        publish_model_dir(staging, Path(args.out))
    return 0


def _exported_line(args: argparse.Namespace, out: Path, manifest) -> str:
    return (f"exported {args.checkpoint} -> {out} ({manifest.backend}, {manifest.precision}, "
            f"max batch {manifest.max_batch})")


def check_gate_data(precision: str, dataset: str | None) -> None:
    """Reduced precisions are gated on mAP, which needs a dataset: fail before exporting without one."""
    from sdk.errors import ConfigError

    if precision != "fp32" and dataset is None:
        raise ConfigError(f"--verify of a {precision} export checks the bbox mAP drop and needs a dataset: "
                          "add --verify-dataset ANN_JSON (a COCO annotation file with its images)")


def verify_export(model_dir: Path, checkpoint: Path, precision: str, dataset: str | None, max_map_drop: float | None):
    """Run the accuracy gate on ``model_dir`` and print its report; returns the report."""
    from sdk.cli.test import default_images_dir
    from sdk.data.synthetic import synthetic_images
    from sdk.engine.verify import Tolerance, format_report, verify_model_dir

    tolerance = Tolerance.for_precision(precision, max_map_drop=max_map_drop)
    if dataset is None:
        report = verify_model_dir(model_dir, checkpoint=checkpoint, images=synthetic_images(4, seed=0),
                                  tolerance=tolerance)
    else:
        report = verify_model_dir(model_dir, checkpoint=checkpoint, dataset=(dataset, str(default_images_dir(dataset))),
                                  tolerance=tolerance, progress=True)
    print(format_report(report))
    return report
