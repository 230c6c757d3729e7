"""How many of torchvision's own detections each SDK artifact reproduces, on photos.

    python -m sdk.benchmarks.torchvision_match --images DIR [--model fasterrcnn_resnet50_fpn]
        [--canvas 800 1344] [--out benchmarks/results/torchvision_match.md]

One seeded random-weight checkpoint of a torchvision-named keep_ratio model (its 91
COCO classes, score threshold 0.001, 300 detections per image: near-uniform scores
make every detection hinge on the exact input, the strictest check there is), run
by the SDK's eager checkpoint, an ONNX Runtime fp32 export padded to one static
canvas (``--input-size``) and a ``--dynamic-shape`` export (padded per image to /32,
as torchvision does), each compared with two references: torchvision's model with
its own ``GeneralizedRCNNTransform`` (float bilinear resize), and torchvision fed the
SDK's resized uint8 pixels (the same input, so only the export's geometry differs).
A detection matches when the reference has one of the same label with IoU >= 0.99
(``sdk.engine.verify.match_detections``).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

MATCH_KNOBS = {"box_score_thresh": 0.001, "box_detections_per_img": 300}


def compare(checkpoint: Path, photos: Sequence[tuple[str, Any]], work: Path, *, canvas: tuple[int, int],
            max_batch: int = 1) -> list[dict[str, Any]]:
    """One row per photo: ``{"image", "hw", "reference": {artifact: matched}, "same_pixels":
    {artifact: matched}}`` for the artifacts ``eager``, ``static`` and ``dynamic``, each
    counted against torchvision as users run it (``reference``: float bilinear resize)
    and against torchvision fed the SDK's own resized uint8 pixels (``same_pixels``)."""
    from sdk import Detector
    from sdk.benchmarks.torchvision_reference import TorchvisionPipeline
    from sdk.converters.export import ExportOptions, export_checkpoint
    from sdk.engine.verify import match_detections

    static_dir = export_checkpoint(checkpoint, work / "static",
                                   ExportOptions(input_size=canvas, max_batch=max_batch))
    dynamic_dir = export_checkpoint(checkpoint, work / "dynamic",
                                    ExportOptions(dynamic_shape=True, max_batch=max_batch))
    torchvision = TorchvisionPipeline(checkpoint)
    artifacts = {"eager": Detector(checkpoint, score_thr=0.0), "static": Detector(static_dir, score_thr=0.0),
                 "dynamic": Detector(dynamic_dir, score_thr=0.0)}
    rows = []
    for name, rgb in photos:
        references = {"reference": torchvision.detect([rgb])[0],
                      "same_pixels": same_pixels_reference(torchvision, artifacts["eager"].preprocess, rgb)}
        found = {key: detector(rgb, channel_order="rgb") for key, detector in artifacts.items()}
        row: dict[str, Any] = {"image": name, "hw": rgb.shape[:2], "detections": len(references["reference"])}
        for ref_name, expected in references.items():
            row[ref_name] = {key: match_detections(expected, dets)[0] for key, dets in found.items()}
        rows.append(row)
    return rows


def same_pixels_reference(torchvision: Any, preprocess: Any, rgb: Any) -> Any:
    """torchvision's detections on the SDK's resized uint8 image: its transform set so it
    does not resize again (scale 1), then its own normalization, zero padding to /32,
    network and post-processing; boxes mapped back to ``rgb``'s pixels."""
    import cv2

    from sdk.detections import Detections
    from sdk.preprocess import preprocess_image, resized_hw

    h, w = rgb.shape[:2]
    new_h, new_w = resized_hw(preprocess, h, w)
    _, record = preprocess_image(rgb, preprocess)
    content = cv2.resize(rgb, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    transform = torchvision.model.transform
    sizes = transform.min_size, transform.max_size
    transform.min_size, transform.max_size = (min(new_h, new_w),), max(new_h, new_w)
    try:
        found = torchvision.detect([content])[0]
    finally:
        transform.min_size, transform.max_size = sizes
    return Detections(record.boxes_to_original(found.boxes), found.scores, found.labels, found.class_names)


def markdown(rows: list[dict[str, Any]], *, model: str, canvas: tuple[int, int], command: str) -> str:
    keys = ("eager", "static", "dynamic")
    total = {ref: {k: sum(r[ref][k] for r in rows) for k in keys} for ref in ("reference", "same_pixels")}
    lines = [
        f"# {model}: torchvision's detections reproduced, per artifact",
        "",
        f"`{command}`",
        "",
        "Seeded random weights, score threshold 0.001, 300 detections per image (near-uniform scores: every "
        "detection hinges on the exact input, the strictest check there is); a match is the same label with "
        "IoU >= 0.99. static: ONNX Runtime fp32 padded to one "
        f"{canvas[0]}x{canvas[1]} canvas; dynamic: `--dynamic-shape` (padded per image to /32, padding zeroed, "
        "boxes clipped to each image). *torchvision*: its model as users run it (float bilinear resize); "
        "*same pixels*: torchvision fed the SDK's resized uint8 image, isolating the export from the uint8 "
        "rounding of the resize.",
        "",
        "| image | H x W | torchvision dets | eager | static | dynamic | eager (same pixels) | static (same pixels) "
        "| dynamic (same pixels) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        cells = [str(r[ref][k]) for ref in ("reference", "same_pixels") for k in keys]
        lines.append(f"| {r['image']} | {r['hw'][0]} x {r['hw'][1]} | {r['detections']} | " + " | ".join(cells) + " |")
    cells = [str(total[ref][k]) for ref in ("reference", "same_pixels") for k in keys]
    lines.append(f"| **all** | | {sum(r['detections'] for r in rows)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _photos(folder: Path) -> list[tuple[str, Any]]:
    from sdk.errors import ConfigError
    from sdk.images import list_image_folder, load_image

    paths = list_image_folder(folder) if folder.is_dir() else []
    if not paths:
        raise ConfigError(f"--images {folder} holds no images")
    return [(p.name, load_image(str(p))) for p in paths]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdk.benchmarks.torchvision_match", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", required=True, type=Path, help="folder of photos")
    parser.add_argument("--model", default="fasterrcnn_resnet50_fpn", help="a torchvision-named keep_ratio model")
    parser.add_argument("--canvas", nargs=2, type=int, default=(800, 1344), metavar=("H", "W"),
                        help="the static export's --input-size (default 800 1344)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="markdown file to write (default: print)")
    args = parser.parse_args(argv)
    from sdk.benchmarks.committed_suites import random_checkpoint

    canvas = tuple(args.canvas)
    photos = _photos(args.images)  # a bad folder fails before minutes of export work
    with tempfile.TemporaryDirectory(prefix="sdk-tv-match-") as tmp:
        work = Path(tmp)
        checkpoint = random_checkpoint(args.model, work / "model.pt", seed=args.seed, extra=MATCH_KNOBS)
        rows = compare(checkpoint, photos, work, canvas=canvas)
    command = "python -m sdk.benchmarks.torchvision_match " + " ".join(sys.argv[1:] if argv is None else argv)
    text = markdown(rows, model=args.model, canvas=canvas, command=command)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    print(text, end="")
    return 0


if __name__ == "__main__":  # pragma: no cover
    os.environ.setdefault("TQDM_DISABLE", "1")
    sys.exit(main())
