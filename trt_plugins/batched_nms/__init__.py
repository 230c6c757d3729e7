"""``sdk::batched_nms``: batched multi-class NMS with fixed-size outputs (README.md).

Importing this package registers ``torch.ops.sdk.batched_nms``.
"""

from .op import batched_nms
from .reference import batched_nms_reference

__all__ = ["batched_nms", "batched_nms_reference"]
