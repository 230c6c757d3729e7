"""The training loop: plain PyTorch in the style of torchvision's references and
detectron2's ``SimpleTrainer``.

One ``Trainer`` per process. Under ``torchrun`` each rank trains on its
``DistributedSampler`` shard inside ``DistributedDataParallel``, validates its shard
of the val images, and rank 0 gathers the detections, computes COCO mAP and writes
every file of the work dir:

    WORK_DIR/config.json   resolved config          WORK_DIR/log.jsonl   JSON-lines log
    WORK_DIR/latest.pt     after every epoch        WORK_DIR/best.pt     best val bbox_mAP
    WORK_DIR/curves.png    loss and mAP curves

Checkpoints are written atomically, best.pt before latest.pt records it, so a kill at
any moment leaves loadable files (``sdk.engine.checkpointing``); ``resume`` continues
from the last completed epoch to the configured final epoch and repairs a missing
best.pt.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from sdk.config import Config
from sdk.engine import checkpointing as ckpt_io
from sdk.engine.distributed import DistContext, all_gather_object, barrier, reduce_mean
from sdk.engine.ema import ModelEMA
from sdk.engine.evaluate import EagerPredictor, run_inference
from sdk.engine.rng import capture_rng_state, restore_rng_state, seed_everything
from sdk.engine.run_log import RunLog, plot_curves
from sdk.engine.schedules import build_lr_scheduler, build_optimizer, load_scheduler_state, scaled_lr
from sdk.errors import ConfigError, SDKError
from sdk.models.inputs import ImageNormalizer

log = logging.getLogger(__name__)


class TrainingDivergedError(SDKError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainOptions:
    """Per-run choices that are not part of the config (the ``sdk train`` flags).

    ``resume``: checkpoint to continue from; ``load_from``: checkpoint whose weights
    initialize the model (fine-tuning); ``auto_scale_lr``: apply the linear scaling
    rule to ``schedule.lr``; ``validate``: run COCO validation; ``progress``: tqdm bars;
    ``overwrite``: start a new run in a work dir that holds another run's checkpoints
    (without it, and without ``resume``, that is an error: a run never silently
    replaces another run's ``best.pt``).
    """

    resume: str | None = None
    load_from: str | None = None
    auto_scale_lr: bool = False
    validate: bool = True
    progress: bool = True
    overwrite: bool = False


@dataclass
class TrainResult:
    work_dir: Path
    epochs: int
    latest: Path
    best: Path | None
    best_map: float | None
    last_metrics: dict[str, Any] | None
    seconds: float
    start_epoch: int = 0  # epochs already done before this run (resume)
    history: list[dict[str, Any]] = field(default_factory=list)


CHECKPOINT_NAMES = ("latest.pt", "best.pt")


def check_work_dir_free(work_dir: Path, options: TrainOptions) -> None:
    """Refuse to start a new run over another run's checkpoints unless asked to."""
    if options.resume or options.overwrite:
        return
    found = [name for name in CHECKPOINT_NAMES if (work_dir / name).exists()]
    if found:
        raise SDKError(f"{work_dir} already holds a run's checkpoints ({', '.join(found)}): pass --resume to "
                       "continue that run, --overwrite to replace it, or --work-dir DIR to start elsewhere")


class Trainer:
    """Builds everything from a ``Config`` and runs ``fit()``."""

    def __init__(self, cfg: Config, ctx: DistContext, options: TrainOptions = TrainOptions()) -> None:
        from sdk.models import build_model, get_model_spec

        self.cfg, self.ctx, self.options = cfg, ctx, options
        self.device = ctx.device
        if not cfg.runtime.work_dir:
            raise ConfigError("runtime.work_dir is not set: pass --work-dir DIR or set it in the config")
        self.work_dir = Path(cfg.runtime.work_dir)
        check_work_dir_free(self.work_dir, options)
        if ctx.device.type == "cpu":
            torch.set_num_threads(cfg.runtime.num_threads or max(1, (os.cpu_count() or 1) // ctx.local_world_size))
        self.preprocess = cfg.data.preprocess or get_model_spec(cfg.model.name).default_preprocess

        self.train_set, self.val_set = self._build_datasets()
        self.classes: list[str] = list(self.train_set.classes)
        self.train_loader = self._build_train_loader()

        seed_everything(cfg.runtime.seed)  # identical initialization on every rank
        model = build_model(cfg.model.name, num_classes=len(self.classes), **cfg.model.overrides)
        if options.load_from:
            ckpt_io.load_pretrained_weights(model, options.load_from)
        self.model = model.to(self.device)
        seed_everything(cfg.runtime.seed + ctx.rank)

        sched = cfg.schedule
        self.total_batch = cfg.data.batch_size * ctx.world_size
        self.lr = scaled_lr(sched, self.total_batch) if options.auto_scale_lr else sched.lr
        if options.auto_scale_lr and ctx.is_main:
            log.info("--auto-scale-lr: lr %g x total batch %d / base batch %d = %g", sched.lr, self.total_batch,
                     sched.base_batch_size, self.lr)
        self.iters_per_epoch = len(self.train_loader)
        self.optimizer = build_optimizer(self.model, sched, lr=self.lr)
        self.scheduler = build_lr_scheduler(self.optimizer, sched, iters_per_epoch=self.iters_per_epoch)
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.ema = ModelEMA(self.model, decay=sched.ema_decay, tau=sched.ema_tau) if sched.ema else None
        self.normalize = ImageNormalizer(self.preprocess).to(self.device)

        self.max_det = int(ckpt_io.postprocess_record(cfg.model.name, cfg.model.overrides)["max_det"])
        self.start_epoch, self.step, self.best_map, self.best_epoch = 0, 0, None, None
        self.run_log = RunLog(self.work_dir / "log.jsonl", enabled=ctx.is_main)
        if ctx.is_main:
            ckpt_io.remove_stale_temporaries(self.work_dir)
        if options.resume:
            self._resume(options.resume)
        else:
            self.run_log.start_fresh()
        self.ddp_model: nn.Module = self.model
        if ctx.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp_model = nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)

    # -- building --------------------------------------------------------------------
    def _build_datasets(self):
        from sdk.data.coco import CocoDetection
        from sdk.data.transforms import build_train_transforms

        data = self.cfg.data
        classes = ["__background__", *self.cfg.model.classes] if self.cfg.model.classes else None
        train_tf = build_train_transforms(
            self.preprocess, hflip=data.hflip, scale_jitter=data.scale_jitter, photometric=data.photometric
        )
        from sdk.models import get_model_spec

        # a mask model trains on the annotations' segmentation; others never decode it
        masks = get_model_spec(self.cfg.model.name).family == "mask_rcnn"
        train = CocoDetection(data.train_ann, data.train_images, classes=classes,
                              filter_empty=data.filter_empty, transforms=train_tf, masks=masks)
        if len(train) == 0:
            raise SDKError(f"the training set {data.train_ann} has no images (after filter_empty={data.filter_empty})")
        val = CocoDetection(data.val_ann, data.val_images, classes=train.classes) if self.options.validate else None
        return train, val

    def _build_train_loader(self):
        from functools import partial

        from torch.utils.data import DataLoader, DistributedSampler

        from sdk.data.transforms import collate_detection

        # A DistributedSampler even for one process: its shuffle is a pure function of
        # (seed, epoch), so a resumed run sees the same order.
        self.sampler = DistributedSampler(self.train_set, num_replicas=self.ctx.world_size, rank=self.ctx.rank,
                                          shuffle=True, seed=self.cfg.runtime.seed)
        self.loader_generator = torch.Generator()
        return DataLoader(self.train_set, batch_size=self.cfg.data.batch_size, sampler=self.sampler,
                          num_workers=self.cfg.data.workers,
                          collate_fn=partial(collate_detection, pad_value=self.preprocess.pad_value),
                          generator=self.loader_generator, pin_memory=self.device.type == "cuda")

    def _amp_dtype(self) -> torch.dtype | None:
        if not self.cfg.schedule.amp:
            return None
        if self.device.type == "cuda":
            return torch.float16
        log.info("AMP on CPU uses bfloat16 autocast (no gradient scaling needed)")
        return torch.bfloat16

    # -- state -------------------------------------------------------------------------
    def _resume(self, path: str) -> None:
        ckpt = ckpt_io.load_for_resume(path, model_name=self.cfg.model.name, classes=self.classes)
        extra = ckpt.extra
        self.model.load_state_dict(extra.get("train_state_dict") or ckpt.state_dict)
        self.optimizer.load_state_dict(extra["optimizer"])
        load_scheduler_state(self.scheduler, extra["scheduler"])
        if extra.get("scaler"):
            self.scaler.load_state_dict(extra["scaler"])
        if self.ema is not None:
            if extra.get("ema"):
                self.ema.load_state_dict(extra["ema"], ckpt.state_dict)
            else:
                self.ema = ModelEMA(self.model, decay=self.ema.decay, tau=self.ema.tau)
        self.start_epoch, self.step, self.best_map = int(extra["epoch"]), int(extra["step"]), extra.get("best_map")
        self.best_epoch = extra.get("best_epoch")
        if self.ctx.is_main:
            self.best_map, self.best_epoch = ckpt_io.repair_best(
                self.work_dir / "best.pt", Path(path), epoch=self.start_epoch, best_map=self.best_map,
                best_epoch=self.best_epoch, val_records=[r for r in self.run_log.records() if r.get("type") == "val"],
            )
        if self.ctx.is_main:
            restore_rng_state(extra["rng"])
        else:
            seed_everything(self.cfg.runtime.seed + self.ctx.rank + 1009 * self.start_epoch)
        self.run_log.truncate_after(self.start_epoch)
        if extra.get("total_batch_size") not in (None, self.total_batch):
            log.warning("resuming with a total batch of %d; the checkpoint was trained with %d",
                        self.total_batch, extra["total_batch_size"])
        log.info("resumed from %s at epoch %d/%d", path, self.start_epoch, self.cfg.schedule.epochs)

    def _extra(self, epoch: int) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "step": self.step,
            "best_map": self.best_map,
            "best_epoch": self.best_epoch,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler.is_enabled() else {},
            "ema": self.ema.state_dict() if self.ema is not None else {},
            "train_state_dict": ckpt_io.cpu_state_dict(self.model) if self.ema is not None else {},
            "rng": capture_rng_state(),
            "config": self.cfg.to_dict(),
            "world_size": self.ctx.world_size,
            "total_batch_size": self.total_batch,
        }

    def _save(self, path: Path, epoch: int) -> Path:
        meta = ckpt_io.make_meta(self.cfg, classes=self.classes, preprocess=self.preprocess)
        weights = ckpt_io.cpu_state_dict(self.eval_model)
        return ckpt_io.save_training_checkpoint(path, meta=meta, weights=weights, extra=self._extra(epoch))

    @property
    def eval_model(self) -> nn.Module:
        """The weights that are validated and deployed (EMA when enabled)."""
        return self.ema.module if self.ema is not None else self.model

    # -- loop ------------------------------------------------------------------------
    def fit(self) -> TrainResult:
        cfg, ctx = self.cfg, self.ctx
        epochs = cfg.schedule.epochs
        latest, best = self.work_dir / "latest.pt", self.work_dir / "best.pt"
        if ctx.is_main:
            self.work_dir.mkdir(parents=True, exist_ok=True)
            (self.work_dir / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
            self.run_log.write({"type": "info", "epoch": self.start_epoch, "world_size": ctx.world_size,
                                "total_batch_size": self.total_batch, "lr": self.lr,
                                "iters_per_epoch": self.iters_per_epoch, "device": str(self.device),
                                "num_classes": len(self.classes), "start_epoch": self.start_epoch})
        start = time.perf_counter()
        metrics = None
        if self.start_epoch >= epochs:
            log.info("nothing to do: the checkpoint already completed %d/%d epochs", self.start_epoch, epochs)
        for epoch in range(self.start_epoch, epochs):
            self.train_one_epoch(epoch)
            done = epoch + 1
            if self.options.validate and (done % cfg.runtime.val_interval == 0 or done == epochs):
                metrics = self.validate(done)
            if ctx.is_main:
                improved = metrics is not None and metrics.get("epoch") == done and (
                    self.best_map is None or metrics["bbox_mAP"] > self.best_map)
                if improved:  # best.pt first: latest.pt must never record a best that is not on disk
                    self.best_map, self.best_epoch = float(metrics["bbox_mAP"]), done
                    self._save(best, done)
                    ckpt_io.copy_atomic(best, latest)
                    log.info("epoch %d: new best bbox_mAP %.4f -> %s", done, self.best_map, best)
                else:
                    self._save(latest, done)
                plot_curves(self.run_log.records(), self.work_dir / "curves.png")
            barrier()
        if ctx.is_main and not latest.exists():  # resumed a finished run from elsewhere
            self._save(latest, self.start_epoch)
        return TrainResult(
            work_dir=self.work_dir, epochs=epochs, latest=latest,
            best=best if self.best_map is not None and best.exists() else None,
            best_map=self.best_map, last_metrics=metrics, seconds=time.perf_counter() - start,
            start_epoch=min(self.start_epoch, epochs),
            history=[r for r in self.run_log.records() if r.get("type") == "val"] if ctx.is_main else [],
        )

    def train_one_epoch(self, epoch: int) -> None:
        cfg, sched = self.cfg, self.cfg.schedule
        self.ddp_model.train()
        self.sampler.set_epoch(epoch)
        # Worker augmentation seeds derive from this generator: a function of (seed, epoch, rank).
        self.loader_generator.manual_seed(cfg.runtime.seed * 100_003 + epoch * 1009 + self.ctx.rank)
        window: dict[str, float] = defaultdict(float)
        count = 0
        bar = tqdm(self.train_loader, desc=f"epoch {epoch + 1}/{sched.epochs}", unit="it",
                   disable=not (self.ctx.is_main and self.options.progress), dynamic_ncols=True, leave=False)
        end = time.perf_counter()
        for i, (images, targets, _records) in enumerate(bar):
            data_time = time.perf_counter() - end
            losses = self.train_step(images, targets, epoch=epoch, it=i)
            count += 1
            for key, value in losses.items():
                window[key] += value
            window["data_time"] += data_time
            window["iter_time"] += time.perf_counter() - end
            bar.set_postfix(loss=f"{losses['loss']:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            if (i + 1) % cfg.runtime.log_interval == 0 or i + 1 == len(self.train_loader):
                means = reduce_mean({k: v / count for k, v in window.items()}, self.device)
                self.run_log.write({"type": "train", "epoch": epoch + 1, "iter": i + 1, "step": self.step,
                                    "lr": self.optimizer.param_groups[0]["lr"],
                                    **{k: round(v, 5) for k, v in means.items()}})
                window.clear()
                count = 0
            end = time.perf_counter()
        bar.close()

    def train_step(self, images: torch.Tensor, targets: list[dict], *, epoch: int, it: int) -> dict[str, float]:
        """One optimizer step on a uint8 [B, 3, H, W] batch; returns the loss terms."""
        images = images.to(self.device, non_blocking=True)
        images = self.normalize(images)
        # masks (Mask R-CNN) travel when the dataset has them; other models ignore them
        targets = [{k: t[k].to(self.device) for k in ("boxes", "labels", "masks") if k in t} for t in targets]
        with torch.autocast(self.device.type, dtype=self.amp_dtype or torch.float32, enabled=self.amp_dtype is not None):
            loss_dict = self.ddp_model(images, targets)
        loss = sum(loss_dict.values())
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"the loss is {loss.item()} at epoch {epoch + 1}, iteration {it + 1} ({ {k: float(v) for k, v in loss_dict.items()} }); "
                "lower schedule.lr, raise schedule.warmup_iters or set schedule.grad_clip"
            )
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.cfg.schedule.grad_clip is not None:
            self.scaler.unscale_(self.optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.schedule.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        self.step += 1
        # one naming in logs for every family: torchvision's RetinaNet/FCOS terms lack the prefix
        terms = {k if k.startswith("loss_") else f"loss_{k}": float(v.item()) for k, v in loss_dict.items()}
        return {"loss": float(loss.item()), **terms}

    @torch.no_grad()
    def validate(self, epoch: int) -> dict[str, Any] | None:
        """COCO bbox metrics of ``eval_model`` on the val set (rank 0; ``None`` elsewhere)."""
        from sdk.evaluation.coco_eval import evaluate_coco

        model = self.eval_model
        predictor = EagerPredictor(model, preprocess=self.preprocess, classes=self.classes,
                                   max_det=self.max_det, device=self.device)
        shard = range(self.ctx.rank, len(self.val_set), self.ctx.world_size)
        detections = run_inference(predictor, self.val_set, batch_size=self.cfg.data.val_batch_size, indices=shard,
                                   progress=self.ctx.is_main and self.options.progress, desc=f"val {epoch}")
        gathered = all_gather_object(detections)
        if not self.ctx.is_main:
            return None
        merged = {k: v for part in gathered for k, v in part.items()}
        metrics = {k: float(v) for k, v in evaluate_coco(self.cfg.data.val_ann, merged).items()
                   if isinstance(v, (int, float))}
        self.run_log.write({"type": "val", "epoch": epoch, "images": len(merged),
                            **{k: round(v, 5) for k, v in metrics.items()}})
        log.info("epoch %d: bbox_mAP %.4f  mAP_50 %.4f  mAP_75 %.4f", epoch, metrics["bbox_mAP"],
                 metrics["bbox_mAP_50"], metrics["bbox_mAP_75"])
        return {"epoch": epoch, **metrics}


def train(cfg: Config, options: TrainOptions = TrainOptions(), *, device: str | None = None) -> TrainResult | None:
    """Train in this process (joining the ``torchrun`` group when there is one).

    Returns the ``TrainResult`` on rank 0 and ``None`` on other ranks.
    """
    from sdk.engine.distributed import cleanup_distributed, init_distributed

    ctx = init_distributed(device or cfg.runtime.device)
    try:
        result = Trainer(cfg, ctx, options).fit()
        return result if ctx.is_main else None
    finally:
        cleanup_distributed()
