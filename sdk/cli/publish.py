"""``sdk publish CKPT OUT``: a weights-only checkpoint named ``OUT-<sha256[:8]>.pt``."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "publish",
        help="strip the training state from a checkpoint and name it with its sha256",
        description="Write CKPT without its training state (optimizer, scheduler, RNG; the deployable weights, "
                    "EMA when trained with it, are kept), all tensors on the CPU, as OUT with '-<sha256[:8]>' "
                    "before the suffix (e.g. OUT fcos.pt -> fcos-1a2b3c4d.pt).",
    )
    p.add_argument("checkpoint", metavar="CKPT", help="SDK checkpoint (e.g. work_dirs/run/best.pt)")
    p.add_argument("out", metavar="OUT", help="file name to publish under (the hash is inserted before the suffix)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sdk.analysis.publish import publish_checkpoint

    final = publish_checkpoint(args.checkpoint, args.out)
    before, after = Path(args.checkpoint).stat().st_size, final.stat().st_size
    print(f"published {final} ({after / 1e6:.2f} MB; {before / 1e6:.2f} MB before)")
    return 0
