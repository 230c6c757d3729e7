"""fp16-network ONNX -> bf16-network ONNX (file in, file out).

    fp16_graph_to_bf16("model_fp16.onnx", "model_bf16.onnx")

The bf16 graph is the fp16 one (``sdk.models.deploy.precision``: the network between
explicit casts, decoding, NMS and RoIAlign float32) with every float16 tensor retyped
to bfloat16: the ``Cast(to=FLOAT16)`` nodes, the float16 weights and the recorded
value types. Nothing else changes, so the float32 regions are exactly the fp16
graph's. ONNX's ``Conv`` takes bfloat16 from opset 22, so the graph is first moved to
opset 22 with ``onnx.version_converter``.

Why not straight from torch: torch's ONNX exporter (2.14) writes the weights of a
bfloat16 ``Conv`` as float32 (the graph fails ONNX's type check), and
onnxconverter-common converts to float16 only. The weights pass through float16 on the
way (float32 -> float16 -> bfloat16, round to nearest even each time): bfloat16 keeps
7 of float16's 10 mantissa bits, so the second rounding decides alone except at exact
ties, and weights of detection networks sit far inside float16's range.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from sdk.converters.onnx_export import check_onnx, save_onnx_atomic

BF16_OPSET = 22


def fp16_graph_to_bf16(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Write the bfloat16 version of the fp16-network graph ``src`` to ``dst`` (see the
    module doc); returns ``Path(dst)``. Raises ``ValueError`` if ``src`` has no float16 tensor."""
    model = onnx.load(str(src))
    if not any(init.data_type == TensorProto.FLOAT16 for init in model.graph.initializer):
        raise ValueError(f"{src} has no float16 weights: export the fp16 graph first")
    if _default_opset(model) < BF16_OPSET:
        model = onnx.version_converter.convert_version(model, BF16_OPSET)
    for node in model.graph.node:
        for attr in node.attribute:
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT16:
                attr.i = TensorProto.BFLOAT16
    for index, init in enumerate(model.graph.initializer):
        if init.data_type == TensorProto.FLOAT16:
            values = numpy_helper.to_array(init).astype(np.float32)
            model.graph.initializer[index].CopyFrom(
                onnx.helper.make_tensor(init.name, TensorProto.BFLOAT16, values.shape, _bf16_bits(values).tobytes(),
                                        raw=True))
    for info in (*model.graph.value_info, *model.graph.output):
        if info.type.tensor_type.elem_type == TensorProto.FLOAT16:
            info.type.tensor_type.elem_type = TensorProto.BFLOAT16
    out = Path(dst)
    save_onnx_atomic(model, out)
    check_onnx(out)
    return out


def _default_opset(model: onnx.ModelProto) -> int:
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


def _bf16_bits(values: np.ndarray) -> np.ndarray:
    """uint16 bfloat16 bit patterns of float32 ``values``, rounded to nearest even."""
    bits = np.ascontiguousarray(values, np.float32).view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype(np.uint16)
