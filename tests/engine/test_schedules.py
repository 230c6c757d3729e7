"""Learning-rate schedules, optimizer groups, EMA and RNG state (``sdk.engine``)."""

from __future__ import annotations

import io
import math
import random

import numpy as np
import pytest
import torch
from torch import nn

from sdk.config import ScheduleConfig
from sdk.engine.ema import ModelEMA
from sdk.engine.rng import capture_rng_state, restore_rng_state
from sdk.engine.schedules import build_lr_scheduler, build_optimizer, parameter_groups, scaled_lr


def _lrs(cfg: ScheduleConfig, iters_per_epoch: int) -> list[float]:
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, cfg, lr=cfg.lr)
    sched = build_lr_scheduler(opt, cfg, iters_per_epoch=iters_per_epoch)
    out = []
    for _ in range(cfg.epochs * iters_per_epoch):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_warmup_then_steps():
    cfg = ScheduleConfig(lr=0.1, epochs=4, steps=(2, 3), gamma=0.1, warmup_iters=5, warmup_factor=0.01)
    lrs = _lrs(cfg, iters_per_epoch=10)
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[0] < lrs[2] < lrs[4] < 0.1
    assert lrs[5:20] == pytest.approx([0.1] * 15)
    assert lrs[20:30] == pytest.approx([0.01] * 10)
    assert lrs[30:] == pytest.approx([0.001] * 10)


def test_cosine_reaches_min_ratio():
    cfg = ScheduleConfig(lr=1.0, epochs=2, lr_schedule="cosine", warmup_iters=0, min_lr_ratio=0.1)
    lrs = _lrs(cfg, iters_per_epoch=50)
    assert lrs[0] == pytest.approx(1.0)
    assert lrs[50] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_flat_cosine_holds_the_rate_for_half_then_decays():
    cfg = ScheduleConfig(lr=1.0, epochs=4, lr_schedule="flat_cosine", warmup_iters=10, warmup_factor=0.1,
                         min_lr_ratio=0.05)
    lrs = _lrs(cfg, iters_per_epoch=50)  # 200 iterations
    assert lrs[0] == pytest.approx(0.1)  # warm-up still applies
    assert lrs[10:101] == pytest.approx([1.0] * 91)  # flat through iteration 100 (half)
    # iteration 150: halfway through the cosine half
    assert lrs[150] == pytest.approx(0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    assert lrs[-1] == pytest.approx(0.05, abs=1e-3)


def test_scheduler_state_resumes_on_the_same_lr():
    cfg = ScheduleConfig(lr=0.1, epochs=3, steps=(1, 2), warmup_iters=4)
    model = nn.Linear(2, 2)
    opt = build_optimizer(model, cfg, lr=cfg.lr)
    sched = build_lr_scheduler(opt, cfg, iters_per_epoch=5)
    for _ in range(7):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    opt2 = build_optimizer(model, cfg, lr=cfg.lr)
    sched2 = build_lr_scheduler(opt2, cfg, iters_per_epoch=5)
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    for _ in range(4):
        assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
        opt.step(), sched.step(), opt2.step(), sched2.step()


def test_linear_scaling_rule():
    assert scaled_lr(ScheduleConfig(lr=0.02, base_batch_size=16), 4) == pytest.approx(0.005)


def test_norm_parameters_get_their_own_weight_decay():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.GroupNorm(2, 4))
    model[0].bias.requires_grad_(False)
    groups = parameter_groups(model, ScheduleConfig(weight_decay=1e-4, norm_weight_decay=0.0))
    assert [len(g["params"]) for g in groups] == [1, 4]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0]
    opt = build_optimizer(model, ScheduleConfig(optimizer="adamw"), lr=1e-3)
    assert isinstance(opt, torch.optim.AdamW)


def test_ema_tracks_weights_with_warmed_up_decay():
    model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
    ema = ModelEMA(model, decay=0.9, tau=1.0)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    before = ema.module[0].weight.clone()
    ema.update(model)
    d = 0.9 * (1 - math.exp(-1.0))
    assert torch.allclose(ema.module[0].weight, d * before + (1 - d) * model[0].weight)
    assert ema.module[1].num_batches_tracked == model[1].num_batches_tracked
    assert not any(p.requires_grad for p in ema.module.parameters())


def test_rng_state_survives_weights_only_checkpoint():
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    state = capture_rng_state()
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    restore_rng_state(torch.load(buf, weights_only=True))
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected
