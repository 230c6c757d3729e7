"""Optimizers and per-iteration learning-rate schedules (warm-up + step, cosine or flat-then-cosine).

The schedule is a ``torch.optim.lr_scheduler.LambdaLR`` stepped once per iteration, so
its whole state is an iteration counter and resuming lands on the same learning rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from sdk.config import ScheduleConfig

# Parameters of these layers get ``norm_weight_decay`` (torchvision references' rule:
# decaying normalization scales towards zero only hurts).
_NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def scaled_lr(cfg: ScheduleConfig, total_batch_size: int) -> float:
    """The linear scaling rule (Goyal et al. 2017): ``lr * total_batch / base_batch_size``."""
    return cfg.lr * total_batch_size / cfg.base_batch_size


def parameter_groups(model: nn.Module, cfg: ScheduleConfig) -> list[dict]:
    """Trainable parameters split into (other, normalization) weight-decay groups."""
    norm_params, other_params = [], []
    seen: set[int] = set()
    for module in model.modules():
        for param in module.parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            (norm_params if isinstance(module, _NORM_LAYERS) else other_params).append(param)
    norm_decay = cfg.weight_decay if cfg.norm_weight_decay is None else cfg.norm_weight_decay
    groups = [{"params": other_params, "weight_decay": cfg.weight_decay}]
    if norm_params:
        groups.append({"params": norm_params, "weight_decay": norm_decay})
    return groups


def build_optimizer(model: nn.Module, cfg: ScheduleConfig, *, lr: float) -> torch.optim.Optimizer:
    """SGD (with Nesterov-free momentum) or AdamW over ``parameter_groups(model)``."""
    groups = parameter_groups(model, cfg)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum)
    return torch.optim.AdamW(groups, lr=lr)


@dataclass(frozen=True)
class LrFactor:
    """Learning-rate multiplier at iteration ``it`` (0-based): linear warm-up times
    step decay (``gamma`` at each epoch in ``steps``), cosine decay to ``min_lr_ratio``,
    or flat-then-cosine (RTMDet's recipe: the full rate for the first half of the
    iterations, cosine to ``min_lr_ratio`` over the second). Plain data, so
    ``LambdaLR.state_dict`` stores it."""

    iters_per_epoch: int
    total_iters: int
    warmup_iters: int
    warmup_factor: float
    schedule: str
    steps: tuple[int, ...]
    gamma: float
    min_lr_ratio: float

    def __call__(self, it: int) -> float:
        warmup = 1.0
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            warmup = self.warmup_factor * (1.0 - alpha) + alpha
        if self.schedule == "step":
            passed = sum(1 for epoch in self.steps if it >= epoch * self.iters_per_epoch)
            decay = self.gamma**passed
        else:
            progress = min(1.0, it / max(1, self.total_iters))
            if self.schedule == "flat_cosine":
                progress = max(0.0, 2.0 * progress - 1.0)
            decay = self.min_lr_ratio + (1.0 - self.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
        return warmup * decay


def build_lr_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, *, iters_per_epoch: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """Per-iteration ``LambdaLR`` over ``cfg.epochs * iters_per_epoch`` iterations."""
    factor = LrFactor(
        iters_per_epoch=iters_per_epoch,
        total_iters=cfg.epochs * iters_per_epoch,
        warmup_iters=min(cfg.warmup_iters, cfg.epochs * iters_per_epoch),
        warmup_factor=cfg.warmup_factor,
        schedule=cfg.lr_schedule,
        steps=tuple(cfg.steps),
        gamma=cfg.gamma,
        min_lr_ratio=cfg.min_lr_ratio,
    )
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_scheduler_state(scheduler: torch.optim.lr_scheduler.LambdaLR, state: dict) -> None:
    """Restore a checkpoint's scheduler position (``last_epoch``, the iteration count)
    while keeping the schedule built from the current config.

    ``LambdaLR.load_state_dict`` would also restore the checkpoint's ``LrFactor``
    (its ``total_iters``), so a run resumed with more epochs would train its extra
    epochs at the old schedule's final rate. The optimizer's learning rates are set
    for the restored position, since the first resumed step uses them as they are.
    """
    factors = [dict(vars(f)) for f in scheduler.lr_lambdas]
    scheduler.load_state_dict(state)
    for fn, own in zip(scheduler.lr_lambdas, factors):
        fn.__dict__.update(own)  # LrFactor is frozen; load_state_dict updates __dict__ the same way
    for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, scheduler.lr_lambdas):
        group["lr"] = base * fn(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]
