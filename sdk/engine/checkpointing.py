"""Training checkpoints on top of ``sdk.checkpoint``: what is saved, resumed, fine-tuned.

A training checkpoint is an ordinary SDK checkpoint (``sdk.checkpoint.save_checkpoint``,
atomic) whose ``state_dict`` holds the weights to deploy (the EMA weights when EMA is
on) and whose ``extra`` holds everything needed to resume:

``epoch`` (completed), ``step``, ``best_map``, ``optimizer``, ``scheduler``, ``scaler``,
``ema`` (counters), ``train_state_dict`` (the raw weights, only with EMA), ``rng``
(Python/NumPy/torch generator states), ``config`` (``Config.to_dict()``),
``world_size`` and ``total_batch_size``.
"""

from __future__ import annotations

import logging
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
