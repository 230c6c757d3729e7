"""Custom ops that carry what is awkward to export: batched NMS and multi-level RoIAlign.

Importing ``sdk.trt_plugins`` (or either subpackage) registers the PyTorch custom ops
``torch.ops.sdk.batched_nms`` and ``torch.ops.sdk.multilevel_roi_align``; import it
before tracing or exporting a model that calls them. Per op: ``reference.py``
(torchvision, defines the semantics), ``op.py`` (custom op, fake kernel, CUDA kernel
registration), ``triton_kernel.py`` (GPU kernel), ``README.md`` (inputs, outputs,
attributes, lowerings). Shared: ``onnx_lowerings.py`` (ONNX per flavor and opset) and
``ort_ops.py`` (ONNX Runtime implementation of the TensorRT-flavor ``sdk::`` nodes).
"""

from . import batched_nms, multilevel_roi_align

__all__ = ["batched_nms", "multilevel_roi_align"]
