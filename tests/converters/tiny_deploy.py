"""A tiny DeployModule-shaped network for the AOTInductor and TensorRT converter tests.

``images uint8 [B, 3, H, W] -> (num_dets, boxes, scores, labels)`` (contract 2) with
the real deploy ingredients at toy size: in-graph ``(x.float() - mean) / std``, a
strided conv "backbone", a fixed set of N = (H/4) * (W/4) candidates decoded to
xyxy boxes, and ``torch.ops.sdk.batched_nms`` on them, returned as the DeployModules'
``DetectionOutputs`` NamedTuple. Seeded weights, so two builds are equal.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

import sdk.trt_plugins  # noqa: F401  (torch.ops.sdk.batched_nms)
from sdk.models.deploy.common import DetectionOutputs
from sdk.preprocess import Preprocess

NUM_CLASSES = 3
PREPROCESS = Preprocess(mode="letterbox", size=(32, 48))
POSTPROCESS = {"score_thr": 0.3, "iou_thr": 0.5, "max_det": 10}


class TinyDeploy(nn.Module):
    """See the module docstring; K = ``POSTPROCESS["max_det"]``."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.register_buffer("mean", torch.tensor(PREPROCESS.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(PREPROCESS.std).view(1, 3, 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1), nn.ReLU()
        )
        self.box = nn.Conv2d(8, 4, 1)
        self.cls = nn.Conv2d(8, NUM_CLASSES, 1)

    def forward(self, images: Tensor) -> DetectionOutputs:
        features = self.body((images.float() - self.mean) / self.std)
        h, w = images.shape[-2:]
        deltas = self.box(features).flatten(2).transpose(1, 2)  # [B, N, 4]
        centers = deltas[..., :2].sigmoid() * torch.tensor([w, h], dtype=torch.float32)
        sizes = deltas[..., 2:].sigmoid() * 12 + 2
        boxes = torch.cat([centers - sizes / 2, centers + sizes / 2], -1)
        scores = self.cls(features).flatten(2).transpose(1, 2).sigmoid()  # [B, N, C]
        return DetectionOutputs(*torch.ops.sdk.batched_nms(
            boxes, scores, POSTPROCESS["score_thr"], POSTPROCESS["iou_thr"], POSTPROCESS["max_det"], -1, False
        ))


def random_images(batch: int, seed: int) -> Tensor:
    """uint8 [batch, 3, H, W] noise at the tiny model's input size."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, 3, *PREPROCESS.size), generator=gen, dtype=torch.uint8)
