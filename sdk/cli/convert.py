"""``sdk convert``: turn third-party weights into an SDK checkpoint.

    sdk convert torchvision fasterrcnn_resnet50_fpn_coco-258fb6c6.pth \\
        --model fasterrcnn_resnet50_fpn --classes coco --out frcnn_coco.pt

The state_dict must load strictly into the registered model (torchvision's builders of
the same name produce such state_dicts). The checkpoint records the model name, the
classes, the model's default preprocessing and the post-processing thresholds.
"""

from __future__ import annotations

import argparse
import ast
import json
import logging
from pathlib import Path
from typing import Any

from sdk.errors import CheckpointError, ConfigError

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "convert",
        help="convert third-party weights into an SDK checkpoint",
        description="Convert third-party weights into an SDK checkpoint (.pt) that `sdk test`, "
        "`sdk export` and `Detector` read.",
    )
    sources = parser.add_subparsers(dest="source", metavar="SOURCE")
    sources.required = True
    tv = sources.add_parser(
        "torchvision",
        help="a torchvision detection state_dict (e.g. its published COCO weights)",
        description="Convert a torchvision detection state_dict (a .pth of {name: tensor}, or a torchvision "
        "reference-script checkpoint with a 'model' entry) into an SDK checkpoint. The weights must "
        "load strictly into --model.",
    )
    tv.add_argument("state_dict", metavar="STATE_DICT", help="the .pth/.pt file holding the state_dict")
    tv.add_argument(
        "--model", required=True, help="SDK model name, e.g. fasterrcnn_resnet50_fpn (see sdk.models.list_models())"
    )
    tv.add_argument(
        "--classes",
        required=True,
        help="class names the model's labels index, background included: 'coco' (torchvision's 91-entry COCO "
        "list), a .txt file (one name per line) or a .json file (a list of names, or a COCO annotation file "
        "whose categories become ['__background__', *names by id])",
    )
    tv.add_argument("--out", required=True, help="where to write the SDK checkpoint (.pt)")
    tv.add_argument("--score-thr", type=float, default=None, help="detection score threshold (default: the model's)")
    tv.add_argument("--iou-thr", type=float, default=None, help="NMS IoU threshold (default: the model's)")
    tv.add_argument("--max-det", type=int, default=None, help="detections kept per image (default: the model's)")
    tv.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model builder override, repeatable (e.g. --set batchnorm_eps=1e-5); applied after the overrides "
        "that reproduce torchvision's pretrained configuration",
    )
    tv.set_defaults(func=convert_torchvision)


def convert_torchvision(args: argparse.Namespace) -> int:
    from sdk.errors import require

    require("torch", extra="torch", purpose="sdk convert")
    from sdk.checkpoint import CheckpointMeta, load_state_dict_file, load_state_dict_strict, save_checkpoint
    from sdk.models import build_model, get_model_spec

    spec = get_model_spec(args.model)
    classes = load_class_names(args.classes)
    overrides = {**spec.pretrained_overrides, **parse_overrides(args.overrides)}
    postprocess = spec.postprocess_record(overrides)
    cli = {"score_thr": args.score_thr, "iou_thr": args.iou_thr, "max_det": args.max_det}
    postprocess.update({k: v for k, v in cli.items() if v is not None})

    state_dict = load_state_dict_file(args.state_dict)
    model = build_model(args.model, num_classes=len(classes), **overrides, **spec.postprocess_overrides(postprocess))
    try:
        load_state_dict_strict(model, state_dict, source=args.state_dict)
    except CheckpointError as exc:
        raise CheckpointError(
            f"{exc} (is --model right, and does --classes list the {len(classes)} classes the weights were "
            "trained with, background included?)"
        ) from None

    meta = CheckpointMeta(
        model_name=args.model,
        num_classes=len(classes),
        classes=tuple(classes),
        preprocess=spec.default_preprocess,
        postprocess=postprocess,
        model_overrides=overrides,
    )
    out = save_checkpoint(args.out, meta=meta, state_dict=model.state_dict())
    log.info("wrote %s: %s, %d classes, postprocess %s", out, args.model, len(classes), postprocess)
    print(out)
    return 0


def load_class_names(source: str) -> list[str]:
    """Class names from ``"coco"``, a ``.txt`` (one per line) or a ``.json`` file.

    JSON: a list of names, or a COCO annotation file (``{"categories": [{"id", "name"}]}``)
    giving ``["__background__", *names sorted by category id]`` (the SDK's training
    convention). ``"coco"`` is torchvision's 91-entry COCO list (labels = COCO ids).
    """
    if source == "coco":
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

        return list(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"--classes: {source} is neither 'coco' nor an existing .txt/.json file")
    if path.suffix == ".txt":
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    elif path.suffix == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and isinstance(data.get("categories"), list):
            categories = sorted(data["categories"], key=lambda c: c["id"])
            names = ["__background__", *(str(c["name"]) for c in categories)]
        elif isinstance(data, list) and all(isinstance(n, str) for n in data):
            names = list(data)
        else:
            raise ConfigError(f"--classes: {source} must hold a list of names or COCO 'categories'")
    else:
        raise ConfigError(f"--classes: {source} must be 'coco', a .txt or a .json file")
    if len(names) < 2:
        raise ConfigError(f"--classes: {source} lists {len(names)} class(es); at least 2 (background included) needed")
    return names


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> ``{key: Python literal (or the raw string)}``."""
    overrides: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            value = ast.literal_eval(raw.strip())
        except (ValueError, SyntaxError):
            value = raw.strip()
        overrides[key.strip()] = value
    return overrides
