"""Detector definitions, the model-name registry and one DeployModule per family.

    from sdk.models import build_model, list_models
    model = build_model("fcos_tiny", num_classes=5)          # torch.nn.Module
    model.eval()(images)  # images: float32 [B, 3, H, W], normalized -> list[dict]

Every family is built from torchvision's components; the torchvision families load the
state_dict of the torchvision builder of the same name unchanged
(``ModelSpec.torchvision_name``). RTMDet has no torchvision counterpart and trains
from scratch.
"""

from sdk.models.registry import FAMILIES, ModelSpec, build_model, get_model_spec, list_models, register_model

# Importing the family modules registers their builders.
from sdk.models.faster_rcnn import FasterRCNN
from sdk.models.fcos import FCOS
from sdk.models.mask_rcnn import MaskRCNN
from sdk.models.retinanet import RetinaNet
from sdk.models.rtmdet import RTMDet
from sdk.models.ssdlite import SSD

__all__ = [
    "FAMILIES",
    "FCOS",
    "SSD",
    "FasterRCNN",
    "MaskRCNN",
    "ModelSpec",
    "RTMDet",
    "RetinaNet",
    "build_model",
    "get_model_spec",
    "list_models",
    "register_model",
]
