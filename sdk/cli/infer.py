"""``sdk infer MODEL INPUT...``: detect objects in images, write drawn images and JSON.

For every input image ``<stem>.<ext>`` the output folder gets ``<stem>.<ext>`` with
the boxes drawn and ``<stem>.json``: ``{"image", "width", "height", "boxes" (xyxy
original pixels), "scores", "labels", "names"}``. Stems that repeat across input
folders get a ``_1``, ``_2`` suffix. Unreadable images (corrupt, not an image, or
over ``--max-pixels``) are reported one line each and skipped; the good ones are
still written, and the exit status is 1 when any image failed.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
from pathlib import Path
from typing import Sequence

from sdk.cli.arguments import add_device_argument

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "infer",
        help="run a model on images, write drawn images and JSON",
        description="Run a model_dir or .pt checkpoint on images, folders or glob patterns.",
    )
    parser.add_argument("model", help="model_dir written by `sdk export`, or an SDK .pt checkpoint")
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT",
        help="image files, folders of images (their subfolders with --recursive), or quoted glob patterns "
             "('dir/**/*.jpg' recurses)",
    )
    parser.add_argument("--recursive", "-r", action="store_true", help="also read the images in subfolders of folders")
    parser.add_argument(
        "--out-dir", default="runs/infer", help="folder for drawn images and JSON files (default: %(default)s)"
    )
    parser.add_argument(
        "--score-thr", type=float, default=0.3, help="keep detections scoring at least this (default: %(default)s)"
    )
    add_device_argument(parser)
    parser.add_argument(
        "--batch-size", type=int, default=None, help="images per backend call (default: the model's maximum batch)"
    )
    parser.add_argument("--no-draw", action="store_true", help="write only the JSON files, no drawn images")
    parser.add_argument(
        "--max-pixels", type=int, default=None, metavar="N",
        help="skip images with more than N pixels (H*W), checked from the file header before decoding "
        "(default 64000000)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from tqdm import tqdm

    from sdk.detector import Detector
    from sdk.images import expand_image_paths
    from sdk.preprocess import iter_chunks

    paths = expand_image_paths(args.inputs, recursive=args.recursive)
    detector = Detector(
        args.model, device=args.device, score_thr=args.score_thr, batch_size=args.batch_size,
        max_pixels=args.max_pixels,
    )
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stems = unique_stems(paths)
    # Files are decoded once (reused for drawing); the next chunk decodes while this one runs.
    chunks = list(iter_chunks(list(zip(paths, stems)), detector.batch_size * 4))
    failed = 0
    with (
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="sdk-decode") as pool,
        tqdm(total=len(paths), unit="img", desc="infer", disable=args.no_progress) as bar,
    ):
        pending = pool.submit(_decode, [p for p, _ in chunks[0]], detector.max_pixels)
        for i, chunk in enumerate(chunks):
            images = pending.result()
            if i + 1 < len(chunks):
                pending = pool.submit(_decode, [p for p, _ in chunks[i + 1]], detector.max_pixels)
            readable = [(p, s, img) for (p, s), img in zip(chunk, images) if img is not None]
            failed += len(chunk) - len(readable)
            if readable:
                results = detector([img for _, _, img in readable], channel_order="rgb")
                for (path, stem, image), dets in zip(readable, results):
                    _write_result(out_dir, path, stem, image, dets, draw=not args.no_draw)
            bar.update(len(chunk))
    print(f"wrote {len(paths) - failed} result(s) to {out_dir}" + (f"; {failed} image(s) unreadable" if failed else ""))
    return 1 if failed else 0


def unique_stems(paths: Sequence[Path]) -> list[str]:
    """File stems made unique in order (``img``, ``img_1``, ...), so outputs never overwrite."""
    seen: set[str] = set()
    out = []
    for path in paths:
        stem, n = path.stem, 0
        while stem in seen:
            n += 1
            stem = f"{path.stem}_{n}"
        seen.add(stem)
        out.append(stem)
    return out


def _decode(paths: Sequence[Path], max_pixels: int) -> list:
    """RGB arrays, ``None`` (with a warning) for files that cannot be read."""
    from sdk.errors import InputError
    from sdk.images import load_image

    images = []
    for path in paths:
        try:
            images.append(load_image(path, max_pixels=max_pixels))
        except InputError as exc:
            log.warning("skipping %s", exc)
            images.append(None)
    return images


def _write_result(out_dir: Path, path: Path, stem: str, image, dets, *, draw: bool) -> None:
    import cv2

    h, w = image.shape[:2]
    record = {"image": str(path), "width": w, "height": h, **dets.to_dict(masks=_can_encode_masks(dets))}
    (out_dir / f"{stem}.json").write_text(json.dumps(record) + "\n", encoding="utf-8")
    if draw:
        target = out_dir / f"{stem}{path.suffix.lower() or '.jpg'}"
        if not cv2.imwrite(str(target), dets.plot(image, score_thr=0.0, channel_order="rgb")):
            log.warning("could not write %s", target)


def _can_encode_masks(dets) -> bool:
    return dets.masks is not None and _rle_available()


@functools.cache
def _rle_available() -> bool:
    """Masks go into the JSON as COCO RLE when pycocotools is installed; without it (a
    runtime-only install) the boxes are still written and one warning says what to add."""
    import importlib.util

    available = importlib.util.find_spec("pycocotools") is not None
    if not available:
        log.warning("masks left out of the JSON files: encoding them as COCO RLE needs pycocotools "
                    "(pip install 'sdk-detect[serve]' or pycocotools)")
    return available
