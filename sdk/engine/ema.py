"""Exponential moving average of model weights (the YOLOv5 / timm ``ModelEmaV2`` rule).

``ema = d * ema + (1 - d) * weights`` after every optimizer step, with the decay
warmed up as ``d = decay * (1 - exp(-updates / tau))`` so the average is not dominated
by the random initialization in short runs. Buffers (BatchNorm statistics) are
averaged too; integer buffers are copied.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """The plain module inside a ``DistributedDataParallel`` wrapper."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


class ModelEMA:
    """An averaged copy (``.module``, eval mode, no gradients) of a model."""

    def __init__(self, model: nn.Module, *, decay: float = 0.9998, tau: float = 2000.0) -> None:
        self.module = copy.deepcopy(unwrap_model(model)).eval()
        for param in self.module.parameters():
            param.requires_grad_(False)
        self.decay = decay
        self.tau = tau
        self.updates = 0

    def current_decay(self) -> float:
        return self.decay * (1.0 - math.exp(-self.updates / self.tau))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = self.current_decay()
        source = unwrap_model(model).state_dict()
        for name, value in self.module.state_dict().items():
            if value.dtype.is_floating_point:
                value.lerp_(source[name].detach().to(value.dtype), 1.0 - d)
            else:
                value.copy_(source[name])

    def state_dict(self) -> dict[str, Any]:
        """Counters only: the averaged weights are saved as the checkpoint's model."""
        return {"updates": self.updates, "decay": self.decay, "tau": self.tau}

    def load_state_dict(self, state: dict[str, Any], weights: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(weights)
        self.updates = int(state["updates"])
