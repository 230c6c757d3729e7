"""Publishing a checkpoint (MMDetection's ``publish_model.py``): weights only, on the CPU,
named with its hash.

The published file is an ordinary SDK checkpoint (``sdk.checkpoint``) holding the
meta (model, classes, preprocessing, post-processing) and the ``state_dict`` to deploy
(the EMA weights when training kept them), without the training state in ``extra``
(optimizer, scheduler, RNG, raw weights), every tensor moved to the CPU. Its name is
``<OUT stem>-<first 8 hex digits of the file's sha256>.pt``, so a download can be
checked against its name.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sdk.errors import InputError


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def publish_checkpoint(ckpt: str | Path, out: str | Path) -> Path:
    """Write the weights-only copy of ``ckpt``; return its final path
    (``out`` with ``-<sha256[:8]>`` before the suffix)."""
    from sdk.checkpoint import load_checkpoint, save_checkpoint

    out = Path(out)
    if out.is_dir() or not out.suffix:
        raise InputError(f"OUT is the file name to publish under, e.g. {out / 'model.pt'}; the hash is added to it")
    loaded = load_checkpoint(ckpt, map_location="cpu")
    state_dict = {k: v.detach().cpu().contiguous() for k, v in loaded.state_dict.items()}
    tmp = save_checkpoint(out.with_name(f".{out.name}.publish"), meta=loaded.meta, state_dict=state_dict, extra=None)
    final = out.with_name(f"{out.stem}-{sha256_file(tmp)[:8]}{out.suffix}")
    tmp.replace(final)
    return final
