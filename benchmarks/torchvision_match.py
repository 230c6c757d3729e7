"""How many of torchvision's own detections each SDK artifact reproduces, on photos.

    python -m sdk.benchmarks.torchvision_match --images DIR [--model fasterrcnn_resnet50_fpn]
        [--canvas 800x1344] [--out benchmarks/results/torchvision_match.md]

One seeded random-weight checkpoint of a torchvision-named keep_ratio model (its 91
COCO classes, score threshold 0.001, 300 detections per image: near-uniform scores
make every detection hinge on the exact input geometry, the strictest check there
is), run four ways on each photo: torchvision's model with its own
``GeneralizedRCNNTransform`` (the reference), the SDK's eager checkpoint, an ONNX
Runtime fp32 export padded to one static canvas (``--input-size``), and a
``--dynamic-shape`` export (padded per image to /32, as torchvision does). A
detection matches when torchvision has one of the same label with IoU >= 0.99
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
    """One row per photo: ``{"image", "hw", "torchvision", "eager", "static", "dynamic"}``
    (the last three: how many of torchvision's detections each reproduces)."""
    from sdk import Detector
    from sdk.benchmarks.torchvision_reference import TorchvisionPipeline
    from sdk.converters.export import ExportOptions, export_checkpoint
    from sdk.engine.verify import match_detections

    static_dir = export_checkpoint(checkpoint, work / "static",
                                   ExportOptions(input_size=canvas, max_batch=max_batch))
    dynamic_dir = export_checkpoint(checkpoint, work / "dynamic",
                                    ExportOptions(dynamic_shape=True, max_batch=max_batch))
    reference = TorchvisionPipeline(checkpoint)
    artifacts = {"eager": Detector(checkpoint, score_thr=0.0), "static": Detector(static_dir, score_thr=0.0),
                 "dynamic": Detector(dynamic_dir, score_thr=0.0)}
    rows = []
    for name, rgb in photos:
        expected = reference.detect([rgb])[0]
        row = {"image": name, "hw": rgb.shape[:2], "torchvision": len(expected)}
        for key, detector in artifacts.items():
            row[key] = match_detections(expected, detector(rgb, channel_order="rgb"))[0]
        rows.append(row)
    return rows


def markdown(rows: list[dict[str, Any]], *, model: str, canvas: tuple[int, int], command: str) -> str:
    total = {k: sum(r[k] for r in rows) for k in ("torchvision", "eager", "static", "dynamic")}
    lines = [
        f"# {model}: detections matching torchvision's, per artifact",
        "",
        f"`{command}`",
        "",
        "Seeded random weights, score threshold 0.001, 300 detections per image; a match is the same label "
        "with IoU >= 0.99. static: ONNX Runtime fp32 padded to one "
        f"{canvas[0]}x{canvas[1]} canvas; dynamic: `--dynamic-shape`, padded per image to /32.",
        "",
        "| image | H x W | torchvision | SDK eager | static canvas | dynamic shape |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['image']} | {r['hw'][0]} x {r['hw'][1]} | {r['torchvision']} | {r['eager']} | "
                     f"{r['static']} | {r['dynamic']} |")
    lines.append(f"| **all** | | {total['torchvision']} | {total['eager']} | {total['static']} | "
                 f"{total['dynamic']} |")
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
    parser.add_argument("--canvas", default="800x1344", help="the static export's --input-size (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="markdown file to write (default: print)")
    args = parser.parse_args(argv)
    from sdk.benchmarks.committed_suites import random_checkpoint
    from sdk.cli.arguments import parse_hw

    canvas = parse_hw(args.canvas)
    with tempfile.TemporaryDirectory(prefix="sdk-tv-match-") as tmp:
        work = Path(tmp)
        checkpoint = random_checkpoint(args.model, work / "model.pt", seed=args.seed, extra=MATCH_KNOBS)
        rows = compare(checkpoint, _photos(args.images), work, canvas=canvas)
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
