"""Export-centric deployment SDK for object detection.

``import sdk`` is light: it does not import torch. The public names load lazily::

    from sdk import Detector
    det = Detector("runs/quickstart/model_dir")   # ONNX Runtime, no torch needed
    dets = det("image.jpg")                          # -> Detections
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_LAZY = {
    "Detector": "sdk.detector",
    "Detections": "sdk.detections",
    "Preprocess": "sdk.preprocess",
    "SDKError": "sdk.errors",
}

__all__ = ["Detector", "Detections", "Preprocess", "SDKError", "__version__"]

if TYPE_CHECKING:  # pragma: no cover
    from sdk.detections import Detections
    from sdk.detector import Detector
    from sdk.errors import SDKError
    from sdk.preprocess import Preprocess


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sdk' has no attribute {name!r}")
