"""Pieces every DeployModule shares: in-graph normalization, static anchors, outputs.

A DeployModule is the export form of an eager detector (``sdk.models``): the same
weights (it holds the eager model's submodules, no copies), one static input size
(or, for a keep_ratio record without a canvas, any H x W padded to the divisor:
anchors then come from the graph), and post-processing with static output shapes, ending in the custom op
``torch.ops.sdk.batched_nms`` (docs/architecture.md, contracts 2 and 3).
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import torch
from torch import Tensor, nn
from torchvision.models.detection.image_list import ImageList
from torchvision.ops import boxes as box_ops

import sdk.trt_plugins  # noqa: F401  registers torch.ops.sdk.* before any tracing
from sdk.models.inputs import ImageNormalizer, as_image_list, zero_padding
from sdk.postprocess_record import Postprocess
from sdk.preprocess import Preprocess, dynamic_input_range

POSTPROCESS_KEYS = Postprocess.KEYS


class DetectionOutputs(NamedTuple):
    """Contract 2: ``num_dets`` int32 [B, 1], ``boxes`` float32 [B, K, 4] xyxy
    network-input pixels, ``scores`` float32 [B, K] descending, ``labels`` int32 [B, K]
    (index into the model's ``classes``); rows past ``num_dets`` are zeros."""

    num_dets: Tensor
    boxes: Tensor
    scores: Tensor
    labels: Tensor


class InputNormalizer(ImageNormalizer):
    """``images`` -> float32 network input, exactly ``Preprocess.normalize``.

    With ``preprocess.normalize_in_graph`` the graph takes uint8 [B, 3, H, W] and
    normalizes it (``sdk.models.inputs.ImageNormalizer``); otherwise it takes the
    already normalized float32 batch and passes it through.
    """

    def __init__(self, preprocess: Preprocess) -> None:
        super().__init__(preprocess)
        self.in_graph = bool(preprocess.normalize_in_graph)

    def forward(self, images: Tensor) -> Tensor:
        return super().forward(images) if self.in_graph else images.float()


def input_size(preprocess: Preprocess) -> tuple[int, int] | None:
    """The static (H, W) of ``preprocess``, or ``None`` for a varying-shape record
    (keep_ratio without a canvas): the DeployModule then takes any /``pad_divisor``
    H x W (a dynamic-shape export, ``sdk export --dynamic-shape``)."""
    static = preprocess.static_shape
    return None if static is None else (int(static[0]), int(static[1]))


def layout_size(preprocess: Preprocess) -> tuple[int, int]:
    """An (H, W) to lay out a DeployModule's levels with: the static size, or a typical
    one of a varying-shape record (``sdk.preprocess.dynamic_input_range``)."""
    static = input_size(preprocess)
    return static if static is not None else dynamic_input_range(preprocess)[1]


def graph_anchors(anchor_generator: nn.Module, images: Tensor, features: list[Tensor]) -> Tensor:
    """The anchors [N, 4] xyxy (input pixels) of ``images`` [B, 3, H, W], computed in
    the graph by the eager model's own ``anchor_generator`` from the symbolic H x W and
    feature sizes: a dynamic-shape export's anchors. Every image of a padded batch has
    the same (H, W), so one image's anchors serve all (torchvision's generator also lays
    them over the padded batch)."""
    height, width = images.shape[-2:]
    return anchor_generator(ImageList(images[:1], [(height, width)]), [f[:1] for f in features])[0]


def clip_to_input(boxes: Tensor, image_size: tuple[int, int] | None, images: Tensor,
                  image_sizes: Tensor | None = None) -> Tensor:
    """``boxes`` [B, ...,  4] xyxy clipped as torchvision's ``clip_boxes_to_image``: to
    each image's content ``image_sizes`` [B, 2] (h, w) when given, else to the static
    ``image_size`` or, when ``None``, to ``images``' own (H, W)."""
    if image_sizes is None:
        return box_ops.clip_boxes_to_image(boxes, image_size if image_size is not None else images.shape[-2:])
    limits = image_sizes.flip(-1).repeat(1, 2).to(boxes.dtype)  # [B, 4]: w, h, w, h
    limits = limits.view(limits.shape[0], *([1] * (boxes.dim() - 2)), 4)
    return torch.minimum(boxes.clamp(min=0), limits)


def normalized_input(normalize: nn.Module, images: Tensor, image_sizes: Tensor | None) -> Tensor:
    """The float network input of ``images``: normalized and, with ``image_sizes``, the
    padding zeroed as torchvision pads (``sdk.models.inputs.zero_padding``)."""
    x = normalize(images)
    return x if image_sizes is None else zero_padding(x, image_sizes)


def check_postprocess(postprocess: Mapping[str, float | int]) -> tuple[float, float, int]:
    """``(score_thr, iou_thr, max_det)`` from a ``{"score_thr", "iou_thr", "max_det"}`` record."""
    record = Postprocess.from_dict(postprocess)
    return record.score_thr, record.iou_thr, record.max_det


@torch.no_grad()
def static_anchors(
    backbone: nn.Module, anchor_generator: nn.Module, image_size: tuple[int, int]
) -> tuple[Tensor, dict[str, tuple[int, int]]]:
    """The anchors of one (H, W) input, computed once by running ``backbone`` on zeros.

    Returns ``(anchors [N, 4] xyxy input pixels, {feature name: (H_l, W_l)})``; the
    anchors are what the eager model's ``anchor_generator`` gives every image of that
    size (location-major per level, levels in the backbone's order).
    """
    param = next(backbone.parameters())
    images = torch.zeros((1, 3, *image_size), dtype=param.dtype, device=param.device)
    was_training = backbone.training
    features = backbone.eval()(images)
    backbone.train(was_training)
    anchors = anchor_generator(as_image_list(images), list(features.values()))[0]
    sizes = {name: (int(f.shape[-2]), int(f.shape[-1])) for name, f in features.items()}
    return anchors.float().cpu(), sizes


def pad_candidates(scores: Tensor, k: int, *, static: bool, fill: float = 0.0) -> tuple[Tensor, int]:
    """``(scores, k')`` for a per-level ``topk``: ``scores`` [B, S] and ``k' = min(k, S)``
    when S is static; else (a dynamic-shape level, S symbolic) ``scores`` with ``k``
    columns of ``fill`` appended and ``k' = k``, so every level yields exactly ``k``
    candidates and the NMS op sees a static candidate count. ``fill`` scores never pass
    the NMS threshold, so the padding changes no detection; an index >= S is padding."""
    if static:
        return scores, min(k, scores.shape[1])
    return torch.cat([scores, scores.new_full((scores.shape[0], k), fill)], dim=1), k


def gather_rows(table: Tensor, index: Tensor) -> Tensor:
    """``table`` [B, N, D], ``index`` int64 [B, K] -> [B, K, D] (row ``index[b, k]`` of image b)."""
    return torch.gather(table, 1, index.unsqueeze(-1).expand(-1, -1, table.shape[-1]))


def valid_rows(num_dets: Tensor, max_det: int) -> Tensor:
    """bool [B, K]: row k of image b is a detection (``k < num_dets[b]``)."""
    return torch.arange(max_det, device=num_dets.device).unsqueeze(0) < num_dets


def shift_labels(outputs: DetectionOutputs, offset: int) -> DetectionOutputs:
    """``labels + offset`` on valid rows (padding stays 0): maps the op's column index
    back to a class index when the background column was dropped before NMS."""
    valid = valid_rows(outputs.num_dets, outputs.labels.shape[1])
    labels = torch.where(valid, outputs.labels + offset, torch.zeros_like(outputs.labels))
    return outputs._replace(labels=labels)
