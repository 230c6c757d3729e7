"""The suites behind the committed results in ``benchmarks/results/`` and how to rerun them.

    python -m sdk.benchmarks.committed_suites                       # list the suites
    python -m sdk.benchmarks.committed_suites retinanet_r50 [--out benchmarks/results]

Each suite names a checkpoint (the quickstart's trained model when it exists, else a
seeded random-weight checkpoint written under ``runs/benchmark/checkpoints``; random
weights are fine for speed, not for mAP) and the ``sdk benchmark suite`` settings.
The markdown it writes starts with the exact command that produced it.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

CHECKPOINT_DIR = Path("runs/benchmark/checkpoints")
QUICKSTART_CHECKPOINT = Path("runs/quickstart/train/best.pt")
QUICKSTART_VAL = Path("runs/quickstart/data/annotations/val.json")


@dataclass(frozen=True)
class SuiteSpec:
    """One committed benchmark.

    Attributes:
        model_name: registry name of the model.
        checkpoint: a trained checkpoint to use when it exists (else random weights).
        dataset: COCO annotation file for mAP, used with the trained checkpoint only.
        batch_sizes, iters, warmup, threads: ``sdk benchmark suite`` settings; ``threads``
            ``None`` = the libraries' default, every core (the committed results: an idle
            2-core machine, both cores).
        input_size: (H, W) static network input (letterbox size or keep_ratio canvas).
        backends: ``backend[:precision]`` export rows (``sdk.benchmarks.targets``);
            ``None`` = ``default_targets(device)``.
        note: what a reader must know (why so few iterations, ...).
        coco_classes: random weights with torchvision's 91-entry COCO class list even for
            a model without a torchvision builder (RTMDet), so heads compare at equal size.
    """

    model_name: str
    batch_sizes: tuple[int, ...]
    iters: int
    warmup: int
    threads: int | None = None
    input_size: tuple[int, int] | None = None
    checkpoint: Path | None = None
    dataset: Path | None = None
    backends: tuple[str, ...] | None = None
    note: str = ""
    coco_classes: bool = False


_R50_NOTE = (
    "Random weights (seed 0; speed does not depend on them, mAP would be 0 so it is not measured). "
    "keep_ratio 800x1333 exported on a static 800x1088 canvas: the 480x640 (4:3 landscape) benchmark images "
    "resize to 800x1067 inside it, the same network input torchvision's transform makes of them (resize to "
    "800x1067, pad to /32), so every row runs the same pixels. int8 rows calibrate on the 8 synthetic benchmark "
    "images (enough for speed, not for accuracy). One fp32 image takes seconds on a 2-core CPU, so batch 1 "
    "only, 10 iterations."
)

_REALTIME_NOTE = (
    "Random weights (seed 0) and torchvision's 91-entry COCO class list: the real-time detectors side by side at "
    "one 320x320 letterbox input (ssdlite320 and rtmdet_tiny_320; RTMDet's published 640 input has 4x the cost). "
    "Speed only: mAP needs trained weights (the quickstart suite has the trained rtmdet_nano's, "
    "quickstart_fcos_tiny.md fcos_tiny's on the same data)."
)

SUITES: dict[str, SuiteSpec] = {
    "quickstart": SuiteSpec(
        model_name="rtmdet_nano", batch_sizes=(1, 8), iters=20, warmup=3,
        checkpoint=QUICKSTART_CHECKPOINT, dataset=QUICKSTART_VAL,
        note="The quickstart's trained rtmdet_nano when runs/quickstart/train/best.pt exists, else random weights.",
    ),
    "ssdlite320": SuiteSpec(
        model_name="ssdlite320_mobilenet_v3_large", batch_sizes=(1, 8), iters=20, warmup=3, input_size=(320, 320),
        note=_REALTIME_NOTE,
    ),
    "rtmdet_tiny_320": SuiteSpec(
        model_name="rtmdet_tiny", batch_sizes=(1, 8), iters=20, warmup=3, input_size=(320, 320), coco_classes=True,
        note=_REALTIME_NOTE,
    ),
    "retinanet_r50": SuiteSpec(
        model_name="retinanet_resnet50_fpn", batch_sizes=(1,), iters=10, warmup=2, input_size=(800, 1088), note=_R50_NOTE
    ),
    "fasterrcnn_r50": SuiteSpec(
        model_name="fasterrcnn_resnet50_fpn", batch_sizes=(1,), iters=10, warmup=2, input_size=(800, 1088), note=_R50_NOTE
    ),
}


def random_checkpoint(model_name: str, path: str | Path, *, seed: int = 0, coco_classes: bool = False,
                      extra: dict | None = None, preprocess=None) -> Path:
    """Write an SDK checkpoint of ``model_name`` with seeded random weights.

    Models with a torchvision builder get torchvision's 91-entry COCO class list and
    the configuration of its published weights (``pretrained_overrides``), i.e. the
    structure ``sdk convert torchvision`` produces; others get 4 classes, or the same
    COCO list with ``coco_classes``. ``extra``: builder knobs on top (e.g. thresholds);
    ``preprocess``: a ``Preprocess`` instead of the model's default.
    """
    import torch

    from sdk.checkpoint import CheckpointMeta, save_checkpoint
    from sdk.models import build_model, get_model_spec

    spec = get_model_spec(model_name)
    if spec.torchvision_name is not None or coco_classes:
        from torchvision.models.detection import FasterRCNN_ResNet50_FPN_Weights

        classes = tuple(FasterRCNN_ResNet50_FPN_Weights.COCO_V1.meta["categories"])
        overrides = dict(spec.pretrained_overrides)
    else:
        classes, overrides = ("__background__", "circle", "square", "triangle"), {}
    overrides = {**overrides, **(extra or {})}
    torch.manual_seed(seed)
    model = build_model(model_name, num_classes=len(classes), **overrides)
    meta = CheckpointMeta(
        model_name=model_name, num_classes=len(classes), classes=classes,
        preprocess=preprocess or spec.default_preprocess,
        postprocess=spec.postprocess_record(overrides), model_overrides=overrides,
    )
    return save_checkpoint(path, meta=meta, state_dict=model.state_dict())


def suite_command(name: str, spec: SuiteSpec, checkpoint: Path, out: Path, *, use_dataset: bool) -> list[str]:
    """The ``sdk benchmark suite`` command line running ``spec`` on ``checkpoint``."""
    cmd = ["sdk", "benchmark", "suite", str(checkpoint), "--out", str(out / name),
           "--batch", ",".join(map(str, spec.batch_sizes)), "--iters", str(spec.iters), "--warmup", str(spec.warmup)]
    if spec.threads:
        cmd += ["--threads", str(spec.threads)]
    if spec.input_size:
        cmd += ["--input-size", f"{spec.input_size[0]}x{spec.input_size[1]}"]
    if use_dataset and spec.dataset:
        cmd += ["--dataset", str(spec.dataset)]
    return cmd


def run_named_suite(
    name: str, out: Path, *, backends: str | list[str] | None = None, force: bool = False
) -> dict[str, Path]:
    """Run suite ``name`` and write ``out/<name>.{json,md}`` and ``out/<name>_latency.png``
    (or ``<name>.loaded.*`` beside an existing result when the machine was loaded and not
    ``force``: ``sdk.benchmarks.result_files``). ``backends``: ``backend[:precision]``
    items overriding the spec's."""
    from sdk.benchmarks.images import synthetic_images
    from sdk.benchmarks.backend_suite import run_suite
    from sdk.benchmarks.suite_report import write_suite
    from sdk.benchmarks.targets import default_targets, parse_targets

    spec = SUITES[name]
    targets = parse_targets(backends or spec.backends or [t.item for t in default_targets()])
    trained = spec.checkpoint is not None and spec.checkpoint.is_file()
    checkpoint = spec.checkpoint if trained else CHECKPOINT_DIR / f"{spec.model_name}_random_seed0.pt"
    if not trained:
        random_checkpoint(spec.model_name, checkpoint, seed=0, coco_classes=spec.coco_classes)
    use_dataset = trained and spec.dataset is not None and spec.dataset.is_file()
    items = [t.item for t in targets]
    cmd = suite_command(name, spec, checkpoint, Path("runs/benchmark"), use_dataset=use_dataset)
    cmd += (["--force"] if force else []) + ["--backends", *items]
    suite = run_suite(
        checkpoint, synthetic_images(8), backends=targets,
        batch_sizes=spec.batch_sizes, input_size=spec.input_size, out_dir=Path("runs/benchmark") / name,
        warmup=spec.warmup, iters=spec.iters, threads=spec.threads,
        images_label="8 synthetic 480x640 JPEGs (sdk.benchmarks.images, seed 0)",
        dataset=spec.dataset if use_dataset else None,
    )
    weights = "trained (quickstart)" if trained else "random, seed 0"
    suite["command"] = " ".join(shlex.quote(c) for c in ["python", "-m", "sdk.benchmarks.committed_suites", name, "--out", str(out)]
                                + (["--backends", *items] if backends else []) + (["--force"] if force else []))
    suite["equivalent_command"] = " ".join(shlex.quote(c) for c in cmd)
    suite["weights"] = weights
    suite["note"] = spec.note
    paths = write_suite(suite, out, stem=name, title=f"{name}: {spec.model_name} ({weights} weights)", force=force)
    if suite["written"]["message"]:
        print(f"{name}: {suite['written']['message']}")
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sdk.benchmarks.committed_suites", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"suites to run: {', '.join(SUITES)}")
    parser.add_argument("--out", default="benchmarks/results", help="results folder (default: %(default)s)")
    parser.add_argument("--backends", nargs="+", default=None, metavar="BACKEND[:PRECISION]",
                        help="export rows, e.g. onnxruntime:int8 openvino:bf16 (default: the suite's; see README)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing result even when the machine was loaded during the run")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    unknown = [n for n in args.names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s) {unknown}; known: {', '.join(SUITES)}")
    if args.backends:
        from sdk.benchmarks.targets import parse_targets
        from sdk.errors import ConfigError

        try:
            parse_targets(args.backends)
        except ConfigError as exc:
            parser.error(str(exc))
    if not args.names:
        for name, spec in SUITES.items():
            print(f"{name}: {spec.model_name}, batches {spec.batch_sizes}, {spec.iters} iterations. {spec.note}")
        return 0
    for name in args.names:
        paths = run_named_suite(name, Path(args.out), backends=args.backends, force=args.force)
        print(f"{name}: wrote {', '.join(str(p) for p in paths.values())}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
