"""fp32 ONNX -> int8 QDQ ONNX by static post-training quantization (file in, file out).

    details = quantize_int8("model_fp32.onnx", "model_int8.onnx", reader)

Built on ``onnxruntime.quantization`` (``quant_pre_process``, then ``quantize_static``
in QDQ format) rather than NNCF: it is already the runtime dependency, it stays
torch-free, and its QDQ output is the one graph ONNX Runtime's CPU provider runs with
its VNNI int8 kernels, OpenVINO executes in int8 (AMX where the CPU has it), and TensorRT takes as explicit
quantization. Weights are int8, symmetric, per output channel; biases stay float;
activation ranges come from MinMax calibration on real images. Activations come in
two schemes (``ACTIVATION_SCHEMES``), chosen by the backend the graph is for:

- ``int8``: symmetric int8 (zero point 0), what TensorRT's explicit quantization
  takes; OpenVINO runs it as fast as any.
- ``uint8``: asymmetric uint8, for ONNX Runtime's CPU provider, whose x86 kernels
  multiply uint8 activations by int8 weights (VPMADDUBSW / VNNI); with int8
  activations it converts them first and ran RetinaNet R50 2x slower here.

What is quantized: every ``Conv``, ``Gemm`` and ``MatMul``, the heads' class and box
predictors included (on RetinaNet the 256->720 class predictor is a quarter of the
head's FLOPs: kept float32 it halved OpenVINO's int8 speed). ``keep_fp32`` keeps
named layers float32; ``output_layers`` names the predictors, for models whose
accuracy gate fails with them quantized. Decoding, thresholds, NMS and RoIAlign stay
float32 since they have no quantizable op. ``quantize_int8`` returns what it did for
the manifest.
"""

from __future__ import annotations

import ast
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import onnx

from sdk.errors import ConfigError

log = logging.getLogger(__name__)

QUANTIZED_OPS = ("Conv", "Gemm", "MatMul")
#: activation scheme -> what it is, for the manifest
ACTIVATION_SCHEMES = {
    "int8": "int8 activations, symmetric (TensorRT's explicit quantization)",
    "uint8": "uint8 activations, asymmetric (ONNX Runtime's x86 u8s8 kernels)",
}
#: at most this many calibration batches' activations are held before they are folded into ranges
_CALIB_BATCHES_IN_MEMORY = 8


def calibration_stride(num_batches: int, most: int = _CALIB_BATCHES_IN_MEMORY) -> int:
    """The largest divisor of ``num_batches`` up to ``most``: ONNX Runtime's strided
    calibration needs the batch count to divide evenly."""
    return max(d for d in range(1, min(most, max(num_batches, 1)) + 1) if num_batches % d == 0)


def output_layers(model: onnx.ModelProto) -> list[str]:
    """Names of the ``QUANTIZED_OPS`` nodes of ``model`` from which no other such node
    is reachable, in graph order."""
    consumers: dict[str, list[int]] = {}
    nodes = list(model.graph.node)
    for index, node in enumerate(nodes):
        for name in node.input:
            consumers.setdefault(name, []).append(index)
    # ONNX graphs are topologically sorted: walking backwards, every consumer is settled first
    reaches_layer = [False] * len(nodes)
    for index in range(len(nodes) - 1, -1, -1):
        reaches_layer[index] = any(nodes[c].op_type in QUANTIZED_OPS or reaches_layer[c]
                                   for out in nodes[index].output for c in consumers.get(out, ()))
    return [n.name for i, n in enumerate(nodes) if n.op_type in QUANTIZED_OPS and not reaches_layer[i]]


def layer_path(node: onnx.NodeProto) -> str:
    """The torch module path of ``node`` (``head.classification_head.cls_logits``) from
    the exporter's name-scope metadata, else the node name."""
    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                break
            modules = [s for s in scopes[:-1] if s]
            # the reduced-precision wrapper adds a ``.module`` level that is not the user's model
            return modules[-1].replace(".module.", ".") if modules else node.name
    return node.name


def quantize_int8(
    fp32_onnx: str | os.PathLike,
    out_path: str | os.PathLike,
    reader: Any,
    *,
    activations: str = "int8",
    keep_fp32: tuple[str, ...] = (),
    float_output_layers: bool = False,
) -> dict[str, Any]:
    """Quantize ``fp32_onnx`` into a QDQ graph at ``out_path``.

    Args:
        fp32_onnx: the float32 graph (standard ONNX ops; ``sdk::`` plugin nodes cannot
            run in the calibrator).
        reader: preprocessed batches with ``len`` and ``set_range``
            (``sdk.converters.calibration.CalibrationReader``), read a few at a time.
        activations: ``"int8"`` or ``"uint8"`` (``ACTIVATION_SCHEMES``).
        keep_fp32: node names to leave float32.
        float_output_layers: also leave the ``output_layers`` (class/box predictors) float32.

    Returns the manifest's ``precision_details``: scheme, calibration image count and
    the layers kept float32 (module paths).
    """
    if activations not in ACTIVATION_SCHEMES:
        raise ConfigError(f"int8 activations must be one of {sorted(ACTIVATION_SCHEMES)}, got {activations!r}")
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source = onnx.load(str(fp32_onnx))
    if any(node.domain == "sdk" for node in source.graph.node):
        raise ConfigError(
            "int8 calibration runs the graph in ONNX Runtime, which cannot run the sdk:: plugin nodes of the "
            "tensorrt flavor: export int8 with --flavor onnxruntime (its standard-op graph also parses in TensorRT)"
        )
    with tempfile.TemporaryDirectory(prefix="sdk-quant-") as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        # Shape inference plus ONNX Runtime's basic fusions (e.g. BatchNormalization into
        # Conv), so each fused layer is quantized once instead of a QDQ pair blocking the fusion.
        quant_pre_process(str(fp32_onnx), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        names = {n.name for n in model.graph.node}
        unknown = sorted(set(keep_fp32) - names)
        if unknown:
            raise ConfigError(f"cannot keep {unknown} float32: the graph has no such nodes")
        excluded = list(dict.fromkeys([*keep_fp32, *(output_layers(model) if float_output_layers else ())]))
        paths = {n.name: layer_path(n) for n in source.graph.node}
        quantize_static(
            str(prepared), str(out_path), reader,
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OPS),
            nodes_to_exclude=excluded,
            per_channel=True,
            reduce_range=False,
            activation_type=QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "ActivationSymmetric": activations == "int8",
                "WeightSymmetric": True,
                "QuantizeBias": False,  # TensorRT takes int8 Q/DQ only; an int32 bias DQ would not parse
                # not CalibMaxIntermediateOutputs: onnxruntime 1.32 drops each full set of
                # outputs without folding it into the ranges (only the last partial set counts)
                "CalibStridedMinMax": calibration_stride(len(reader)),
            },
        )
    quantized = onnx.load(str(out_path), load_external_data=False)
    counts = {op: sum(1 for n in model.graph.node if n.op_type == op) for op in QUANTIZED_OPS}
    log.info("int8: quantized %d of %d layers, kept %d float32", sum(counts.values()) - len(excluded),
             sum(counts.values()), len(excluded))
    return {
        "scheme": f"static post-training quantization, QDQ, {ACTIVATION_SCHEMES[activations]}, int8 symmetric "
                  "per-channel weights, float biases, MinMax calibration (onnxruntime.quantization)",
        "activations": activations,
        "quantized_op_types": list(QUANTIZED_OPS),
        "quantized_layers": sum(counts.values()) - len(excluded),
        "float32_layers": sorted({paths.get(name, name) for name in excluded}),
        "quantize_linear_nodes": sum(1 for n in quantized.graph.node if n.op_type == "QuantizeLinear"),
        "calibration_images": len(getattr(reader, "paths", ())),
    }
