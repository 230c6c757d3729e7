"""Training checkpoints on top of ``sdk.checkpoint``: what is saved, resumed, fine-tuned.

A training checkpoint is an ordinary SDK checkpoint (``sdk.checkpoint.save_checkpoint``,
atomic) whose ``state_dict`` holds the weights to deploy (the EMA weights when EMA is
on) and whose ``extra`` holds everything needed to resume:

``epoch`` (completed), ``step``, ``best_map``, ``best_epoch``, ``optimizer``, ``scheduler``, ``scaler``,
``ema`` (counters), ``train_state_dict`` (the raw weights, only with EMA), ``rng``
(Python/NumPy/torch generator states), ``config`` (``Config.to_dict()``),
``world_size`` and ``total_batch_size``.

Write order (``Trainer.fit``): on a new best, ``best.pt`` is written first and then
copied to ``latest.pt``, so ``latest.pt`` never records a best score that is not on
disk; each write is atomic. A crash at any instant leaves both loadable, and
``repair_best`` (run on ``--resume``) recreates a ``best.pt`` that is missing or
older than what the resumed checkpoint records; ``remove_stale_temporaries`` deletes
the ``.NAME.pt.*.tmp`` files killed writes leave behind.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from sdk.config import Config
from sdk.errors import CheckpointError
from sdk.preprocess import Preprocess

log = logging.getLogger(__name__)


def postprocess_record(model_name: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The ``{"score_thr", "iou_thr", "max_det"}`` record of a model built with ``overrides``."""
    from sdk.models import get_model_spec

    spec = get_model_spec(model_name)
    record = spec.default_postprocess()
    knob_of = spec.postprocess_overrides({key: key for key in record})  # knob name -> record key
    for knob, key in knob_of.items():
        if knob in overrides:
            record[key] = overrides[knob]
    return record


def make_meta(cfg: Config, *, classes: Sequence[str], preprocess: Preprocess):
    """The ``CheckpointMeta`` of a model trained with ``cfg``."""
    from sdk.checkpoint import CheckpointMeta

    return CheckpointMeta(
        model_name=cfg.model.name,
        num_classes=len(classes),
        classes=tuple(classes),
        preprocess=preprocess,
        postprocess=postprocess_record(cfg.model.name, cfg.model.overrides),
        model_overrides=dict(cfg.model.overrides),
    )


def cpu_state_dict(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def save_training_checkpoint(path: Path, *, meta: Any, weights: Mapping[str, torch.Tensor],
                             extra: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (a kill mid-write leaves the previous file intact)."""
    from sdk.checkpoint import save_checkpoint

    return save_checkpoint(path, meta=meta, state_dict=dict(weights), extra=extra)


def copy_atomic(src: Path, dst: Path) -> Path:
    """Copy a checkpoint file so that ``dst`` is at every moment either the old or the new file."""
    from sdk.checkpoint import write_atomic

    with open(src, "rb") as inp:
        return write_atomic(dst, lambda out: shutil.copyfileobj(inp, out))


def load_for_resume(path: str | Path, *, model_name: str, classes: Sequence[str]):
    """Load a checkpoint to resume from; it must be a training checkpoint of the same
    model and classes (``CheckpointError`` saying to use ``--load-from`` otherwise)."""
    from sdk.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    extra = ckpt.extra or {}
    if "optimizer" not in extra or "epoch" not in extra:
        raise CheckpointError(
            f"{path} holds weights but no training state (optimizer, epoch), so it cannot be resumed; "
            "start a new run from it with --load-from"
        )
    if ckpt.meta.model_name != model_name or tuple(ckpt.meta.classes) != tuple(classes):
        raise CheckpointError(
            f"cannot resume from {path}: it trains {ckpt.meta.model_name!r} with {len(ckpt.meta.classes)} classes, "
            f"the config trains {model_name!r} with {len(classes)}; use --load-from to fine-tune from it instead"
        )
    return ckpt


def load_pretrained_weights(model: nn.Module, path: str | Path) -> dict[str, list[str]]:
    """Load the weights of checkpoint ``path`` into ``model`` for fine-tuning.

    Tensors whose name and shape match are loaded; others (e.g. a classification head
    for a different ``num_classes``) are skipped with a log line. Returns
    ``{"loaded", "skipped_shape", "missing", "unexpected"}`` key lists. Raises
    ``CheckpointError`` when nothing matches (the checkpoint is of another model).
    """
    from sdk.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    own = model.state_dict()
    loaded, skipped, unexpected = {}, [], []
    for key, value in ckpt.state_dict.items():
        if key not in own:
            unexpected.append(key)
        elif own[key].shape != value.shape:
            skipped.append(key)
            log.info("load-from: skipping %s (checkpoint %s, model %s)", key, tuple(value.shape), tuple(own[key].shape))
        else:
            loaded[key] = value
    if not loaded:
        raise CheckpointError(
            f"no weight of {path} (model {ckpt.meta.model_name!r}) fits the model being trained; "
            "check the config's model.name"
        )
    missing = sorted(set(own) - set(loaded) - set(skipped))
    model.load_state_dict(loaded, strict=False)
    log.info(
        "load-from %s: loaded %d tensors, skipped %d with other shapes, %d missing, %d unexpected",
        path, len(loaded), len(skipped), len(missing), len(unexpected),
    )
    if unexpected:
        log.info("load-from: unexpected keys (first 5): %s", unexpected[:5])
    if missing:
        log.info("load-from: keys left at their initialization (first 5): %s", missing[:5])
    return {"loaded": sorted(loaded), "skipped_shape": skipped, "missing": missing, "unexpected": unexpected}


def remove_stale_temporaries(work_dir: Path, names: Sequence[str] = ("latest.pt", "best.pt")) -> list[Path]:
    """Delete the temporary files (``.latest.pt.XXXX.tmp``) a killed checkpoint write left."""
    removed = []
    if work_dir.is_dir():
        for name in names:
            for tmp in work_dir.glob(f".{name}.*.tmp"):
                tmp.unlink(missing_ok=True)
                removed.append(tmp)
    if removed:
        log.info("removed %d temporary file(s) of interrupted checkpoint writes in %s", len(removed), work_dir)
    return removed


def repair_best(best: Path, resumed: Path, *, epoch: int, best_map: float | None, best_epoch: int | None,
                val_records: Sequence[Mapping[str, Any]] = ()) -> tuple[float | None, int | None]:
    """Make ``best.pt`` hold the best checkpoint the resumed one (``resumed``, at ``epoch``) records.

    ``best.pt`` is kept when it holds that score or a later, higher one (a crash after
    writing best.pt, before latest.pt). When it is missing, unreadable or older: if the
    resumed checkpoint is itself the best epoch (``best_epoch``, or for checkpoints of
    older SDKs the run log's val record of ``epoch`` equal to ``best_map``), it is copied
    to ``best.pt``; otherwise those weights are gone, and the best score is forgotten so
    the next validation writes a new ``best.pt``. Returns ``(best_map, best_epoch)`` to go on with.
    """
    from sdk.checkpoint import load_checkpoint

    if best_map is None:
        return None, None
    if best.exists():
        try:
            on_disk = (load_checkpoint(best).extra or {}).get("best_map")
        except CheckpointError as exc:
            log.warning("best checkpoint %s is unreadable (%s); repairing it", best, exc)
            on_disk = None
        if on_disk is not None and on_disk >= best_map - 1e-12:
            return best_map, best_epoch
    if best_epoch is None:  # checkpoints written before best_epoch was recorded
        here = [r for r in val_records if r.get("epoch") == epoch and "bbox_mAP" in r]
        if here and math.isclose(float(here[-1]["bbox_mAP"]), best_map, abs_tol=1e-5):
            best_epoch = epoch
    if best_epoch == epoch:
        copy_atomic(resumed, best)
        log.warning("%s was missing or stale: restored it from %s (epoch %d, bbox_mAP %.4f)", best, resumed,
                    epoch, best_map)
        return best_map, best_epoch
    log.warning("%s was missing or stale and its weights (epoch %s, bbox_mAP %.4f) are not in %s: the next "
                "validated epoch writes a new best.pt", best, best_epoch, best_map, resumed)
    return None, None
