"""``sdk::multilevel_roi_align``: FPN RoIAlign with level assignment (README.md).

Importing this package registers ``torch.ops.sdk.multilevel_roi_align``.
"""

from .op import multilevel_roi_align
from .reference import assign_levels, multilevel_roi_align_reference

__all__ = ["assign_levels", "multilevel_roi_align", "multilevel_roi_align_reference"]
