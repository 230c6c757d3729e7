"""``sdk train CONFIG``: train a detector (multi-GPU / multi-node with ``torchrun``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from sdk.cli.arguments import add_device_argument


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a detector from a config file",
        description=(
            "Train a detector from a config (configs/*.py). Writes WORK_DIR/{latest.pt, best.pt, log.jsonl, "
            "config.json, curves.png}; an existing run there is continued with --resume or replaced with --overwrite. Several processes: torchrun --nproc_per_node N -m sdk.cli.main train CONFIG --device cuda"
        ),
    )
    p.add_argument("config", help="config file (e.g. configs/quickstart_tiny.py); put --resume after it")
    p.add_argument("--work-dir", help="output folder (default: the config's runtime.work_dir, else work_dirs/<config name>)")
    p.add_argument("--resume", nargs="?", const="auto", metavar="CKPT",
                   help="continue an interrupted run from CKPT (default WORK_DIR/latest.pt): weights, optimizer, "
                        "schedule, EMA, RNG and epoch are restored; training ends at the config's epoch count")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a work dir that holds another run's checkpoints, replacing them "
                        "(without it that is an error)")
    p.add_argument("--load-from", metavar="CKPT",
                   help="initialize the weights from CKPT and start a new run (fine-tuning); tensors whose shape "
                        "differs (e.g. the class head) are skipped")
    p.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                   help="override config values, e.g. schedule.lr=0.02 data.batch_size=8 (unknown keys and wrong "
                        "types are errors)")
    p.add_argument("--auto-scale-lr", action="store_true",
                   help="scale schedule.lr linearly by total batch / schedule.base_batch_size")
    p.add_argument("--amp", action="store_true", help="mixed precision (fp16 on CUDA, bf16 on CPU); same as schedule.amp=True")
    add_device_argument(p, allow_auto=True, from_config=True, what="training runs (sets runtime.device)")
    p.add_argument("--no-validate", action="store_true", help="skip validation (no best.pt is written)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=run)


def resolve_work_dir(config_path: str, cli_work_dir: str | None, config_work_dir: str | None) -> str:
    """``--work-dir``, else the config's ``runtime.work_dir``, else ``work_dirs/<config stem>``."""
    return cli_work_dir or config_work_dir or str(Path("work_dirs") / Path(config_path).stem)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from sdk.config import load_config
    from sdk.engine.trainer import TrainOptions, train
    from sdk.errors import CheckpointError

    overrides = list(args.cfg_options)
    if args.amp:
        overrides.append("schedule.amp=True")
    if args.device:
        overrides.append(f"runtime.device={args.device}")
    cfg = load_config(args.config, overrides)
    work_dir = resolve_work_dir(args.config, args.work_dir, cfg.runtime.work_dir)
    cfg = replace(cfg, runtime=replace(cfg.runtime, work_dir=work_dir))
    resume = args.resume
    if resume == "auto":
        resume = str(Path(work_dir) / "latest.pt")
        if not Path(resume).exists():
            raise CheckpointError(f"--resume: there is no {resume} to continue from; train without --resume first")
    if resume and args.load_from:
        raise CheckpointError("--resume and --load-from exclude each other: resume restores the weights already")
    if resume and args.overwrite:
        raise CheckpointError("--resume and --overwrite exclude each other: resume continues the run in place")
    options = TrainOptions(resume=resume, load_from=args.load_from, auto_scale_lr=args.auto_scale_lr,
                           validate=not args.no_validate, progress=not args.no_progress, overwrite=args.overwrite)
    result = train(cfg, options)
    if result is not None:
        print(summary_line(result))
    return 0


def summary_line(result) -> str:
    """``trained N epoch(s) ...`` counting only the epochs this run trained."""
    ran = result.epochs - result.start_epoch
    span = f" (epochs {result.start_epoch + 1}-{result.epochs})" if result.start_epoch and ran else ""
    best = f", best bbox_mAP {result.best_map:.4f} ({result.best})" if result.best_map is not None else ""
    return f"trained {ran} epoch{'s' if ran != 1 else ''}{span} in {result.seconds:.0f} s: {result.latest}{best}"
