"""Deployable (static-shape, export-ready) modules, one per family.

    from sdk.models.deploy import build_deploy_module
    deploy = build_deploy_module(model, preprocess=meta.preprocess.with_static_shape(),
                                 postprocess=meta.postprocess)
    num_dets, boxes, scores, labels = deploy(images_uint8)   # contract 2

Each holds the eager model's submodules (no weight copies) and computes the same
detections with static shapes, normalization in the graph and the custom ops
``torch.ops.sdk.batched_nms`` / ``torch.ops.sdk.multilevel_roi_align``.
"""

from __future__ import annotations

from typing import Mapping

from torch import nn

from sdk.errors import ConfigError
from sdk.models.deploy.common import DetectionOutputs, InputNormalizer
from sdk.models.deploy.dense import DenseDeployModule, FCOSDeploy, RetinaNetDeploy, RTMDetDeploy
from sdk.models.deploy.faster_rcnn import FasterRCNNDeploy
from sdk.models.deploy.mask_rcnn import InstanceOutputs, MaskRCNNDeploy, mask_output_size
from sdk.models.deploy.ssdlite import SSDDeploy
from sdk.preprocess import Preprocess


def build_deploy_module(model: nn.Module, *, preprocess: Preprocess, postprocess: Mapping[str, float | int]) -> nn.Module:
    """The DeployModule of ``model``'s family, in eval mode.

    Args:
        model: an eager ``sdk.models`` detector (RetinaNet, FCOS, FasterRCNN, MaskRCNN,
            SSD, RTMDet); a MaskRCNN's module also returns ``masks`` (``InstanceOutputs``).
        preprocess: a ``Preprocess`` with a static input shape (letterbox, or
            ``with_static_shape()``); normalization goes into the graph when
            ``normalize_in_graph``.
        postprocess: ``{"score_thr", "iou_thr", "max_det"}``.
    """
    from sdk.models import FCOS, SSD, FasterRCNN, MaskRCNN, RetinaNet, RTMDet

    # MaskRCNN before its base class FasterRCNN
    families = (
        (RetinaNet, RetinaNetDeploy),
        (FCOS, FCOSDeploy),
        (MaskRCNN, MaskRCNNDeploy),
        (FasterRCNN, FasterRCNNDeploy),
        (SSD, SSDDeploy),
        (RTMDet, RTMDetDeploy),
    )
    for model_type, deploy_type in families:
        if isinstance(model, model_type):
            return deploy_type(model, preprocess=preprocess, postprocess=postprocess).eval()
    raise ConfigError(f"no DeployModule for {type(model).__name__}; supported: RetinaNet, FCOS, FasterRCNN, MaskRCNN, "
                      "SSD, RTMDet")


__all__ = [
    "DenseDeployModule",
    "DetectionOutputs",
    "FCOSDeploy",
    "FasterRCNNDeploy",
    "InputNormalizer",
    "InstanceOutputs",
    "MaskRCNNDeploy",
    "RTMDetDeploy",
    "RetinaNetDeploy",
    "SSDDeploy",
    "build_deploy_module",
    "mask_output_size",
]
