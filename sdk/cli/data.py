"""``sdk data``: make datasets.

    sdk data synth --out data/shapes [--train 800] [--val 200] [--size 320] [--seed 0]
    sdk data images2coco IMG_DIR CLASSES OUT.json
    sdk data browse ANN_JSON --out DIR [--config CONFIG] [--images DIR]
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "data",
        help="make datasets: a synthetic COCO shapes dataset, or a COCO file for an image folder",
        description="Make datasets in COCO format.",
    )
    actions = parser.add_subparsers(dest="data_command", metavar="ACTION")
    actions.required = True

    synth = actions.add_parser(
        "synth",
        help="generate the synthetic shapes dataset (COCO format)",
        description="Generate a synthetic COCO detection dataset of shapes on cluttered backgrounds: "
        "OUT/annotations/{train,val}.json and OUT/images/{train,val}/*.jpg. Deterministic per seed.",
    )
    synth.add_argument("--out", required=True, metavar="DIR", help="output folder (created; existing files are overwritten)")
    synth.add_argument("--train", type=_non_negative, default=800, metavar="N", help="number of training images (default 800)")
    synth.add_argument("--val", type=_non_negative, default=200, metavar="N", help="number of validation images (default 200)")
    synth.add_argument("--size", type=int, default=320, metavar="PX",
                       help="nominal image side; each side varies by +-25%% (default 320, i.e. 240-400 px)")
    synth.add_argument("--seed", type=int, default=0, metavar="S", help="random seed; the same seed gives the same files (default 0)")
    synth.add_argument("--objects", type=int, nargs=2, default=(1, 6), metavar=("MIN", "MAX"),
                       help="objects drawn per image, inclusive range (default 1 6)")
    synth.add_argument("--object-size", type=float, nargs=2, default=(24.0, 120.0), metavar=("MIN", "MAX"),
                       help="long side of an object's box in pixels (default 24 120)")
    synth.add_argument("--clutter", type=float, default=0.5, metavar="X",
                       help="background clutter from 0 (plain gradients) to 1 (busy texture, distractors, noise); default 0.5")
    synth.add_argument("--empty-fraction", type=float, default=0.05, metavar="F", help="share of images with no objects (default 0.05)")
    synth.add_argument("--segmentation", choices=("rle", "polygon", "none"), default="rle",
                       help="instance masks per annotation: rle (exact visible pixels, default), polygon (outer "
                            "contours) or none (boxes only)")
    synth.set_defaults(func=_synth)

    to_coco = actions.add_parser(
        "images2coco",
        help="write a COCO JSON (images and categories, no annotations) for a folder of images",
        description="List the images under IMG_DIR (recursively) in a COCO JSON with the given categories "
        "and no annotations, for inference or testing on unlabeled folders.",
    )
    to_coco.add_argument("img_dir", metavar="IMG_DIR", help="folder of images (searched recursively)")
    to_coco.add_argument("classes", metavar="CLASSES",
                         help="class names: a .txt file with one name per line, or comma-separated names 'cat,dog'")
    to_coco.add_argument("out_json", metavar="OUT.json", help="COCO JSON file to write")
    to_coco.set_defaults(func=_images2coco)

    browse = actions.add_parser(
        "browse",
        help="draw the ground truth after the training transforms (what the model sees)",
        description="Send the images of a COCO dataset through the training pipeline of CONFIG (flip, "
        "photometric distortion, scale jitter, then the preprocessing placement; without --config the "
        "default pipeline) and draw their boxes on the resulting network inputs, one JPEG per image in OUT.",
    )
    browse.add_argument("ann", metavar="ANN_JSON", help="COCO annotation file")
    browse.add_argument("--images", metavar="DIR", help="folder the file_names are relative to (default <ann_dir>/../images)")
    browse.add_argument("--out", required=True, metavar="DIR", help="output folder")
    browse.add_argument("--config", metavar="CONFIG", help="training config whose data pipeline to apply")
    browse.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="config overrides, e.g. data.hflip=1.0 data.scale_jitter=0.5,1.5")
    browse.add_argument("--no-augment", action="store_true", help="only the preprocessing placement (evaluation pipeline)")
    browse.add_argument("--num", type=_non_negative, metavar="N", help="only the first N images")
    browse.add_argument("--seed", type=int, default=0, help="seed of the random augmentation (default 0)")
    browse.add_argument("--no-progress", action="store_true", help="no progress bar")
    browse.set_defaults(func=_browse)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _synth(args: argparse.Namespace) -> int:
    from sdk.data.synthetic import generate_synthetic_coco

    paths = generate_synthetic_coco(
        args.out,
        num_train=args.train,
        num_val=args.val,
        image_size=args.size,
        seed=args.seed,
        objects_per_image=tuple(args.objects),
        object_size=tuple(args.object_size),
        clutter=args.clutter,
        empty_fraction=args.empty_fraction,
        segmentation=None if args.segmentation == "none" else args.segmentation,
    )
    print(f"train: {paths.train_json}\nval:   {paths.val_json}\nimages: {paths.images_dir}")
    return 0


def _browse(args: argparse.Namespace) -> int:
    from sdk.analysis.browse import browse_dataset

    written = browse_dataset(args.ann, args.images, args.out, config_path=args.config, cfg_options=args.cfg_options,
                             augment=not args.no_augment, num=args.num, seed=args.seed, progress=not args.no_progress)
    print(f"drew {len(written)} image(s) into {args.out}")
    return 0


def _images2coco(args: argparse.Namespace) -> int:
    from sdk.data.image_folder import images_to_coco, parse_class_names

    out = images_to_coco(args.img_dir, parse_class_names(args.classes), args.out_json)
    print(out)
    return 0
