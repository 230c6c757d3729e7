"""ONNX -> OpenVINO IR (``model.xml`` + ``model.bin``): the file-in, file-out stage of
``sdk export --backend openvino``.

The input is an ONNX graph of the ``onnxruntime`` flavor (standard ops only:
``NonMaxSuppression``, ``TopK``, ``RoiAlign`` opset >= 16, ``ScatterND`` ...), in
fp32, with fp16/bf16 sections between ``Cast`` nodes, or an int8 QDQ graph
(``QuantizeLinear``/``DequantizeLinear`` pairs). ``openvino.convert_model`` reads it
through OpenVINO's ONNX frontend; the IR keeps the graph's input and output names,
dtypes and dynamic batch dimension. Graphs of the ``tensorrt`` flavor (``sdk::``
nodes) have no OpenVINO implementation and are refused.

Needs only ``openvino`` (no torch, no onnx package).
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from sdk.errors import BackendUnavailableError, ConfigError, require

log = logging.getLogger(__name__)

XML_NAME = "model.xml"
BIN_NAME = "model.bin"


def convert_onnx_to_openvino(onnx_path: str | os.PathLike, out_dir: str | os.PathLike) -> list[Path]:
    """Convert the ONNX graph at ``onnx_path`` into ``out_dir/model.xml`` + ``out_dir/model.bin``.

    The IR has the ONNX graph's input (``images`` uint8 or float32 [B, 3, H, W], B
    dynamic as in the graph) and outputs (``num_dets`` int32 [B, 1], ``boxes``
    float32 [B, K, 4], ``scores`` float32 [B, K], ``labels`` int32 [B, K]), and the
    graph's own precision: fp32 weights stay fp32, fp16/bf16 sections and QDQ int8
    layers stay as they are.

    Returns ``[xml, bin]``. Raises ``BackendUnavailableError`` when ``openvino`` is not
    installed or cannot read the graph, ``ConfigError`` when ``onnx_path`` is missing.
    """
    src = Path(onnx_path)
    if not src.is_file():
        raise ConfigError(f"ONNX file not found: {src}")
    ov = require("openvino", extra="openvino", purpose="Converting ONNX to OpenVINO IR")
    try:
        model = ov.convert_model(str(src))
    except Exception as exc:  # the frontend raises its own (unexported) error types
        raise BackendUnavailableError(
            f"OpenVINO {_version(ov)} cannot convert {src}: {_reason(exc)}. Export the graph with "
            "--flavor onnxruntime (standard ONNX ops; sdk:: plugin nodes are TensorRT-only) or upgrade openvino"
        ) from exc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    xml, weights = out / XML_NAME, out / BIN_NAME
    # Save into a temp folder on the same filesystem, then rename: out_dir never holds
    # a half-written file. (The .xml finds its .bin by stem, so both keep their names.)
    with tempfile.TemporaryDirectory(dir=out, prefix=".openvino-") as tmp:
        tmp_xml = Path(tmp) / XML_NAME
        # compress_to_fp16=False: the precision is a property of the exported graph
        # (docs/architecture.md 3b). save_model's default would silently store fp32 weights
        # as fp16, so an fp32 model_dir would no longer compute what was verified.
        ov.save_model(model, str(tmp_xml), compress_to_fp16=False)
        os.replace(Path(tmp) / BIN_NAME, weights)
        os.replace(tmp_xml, xml)
    log.info("converted %s to OpenVINO IR %s (+ %s)", src, xml, weights.name)
    return [xml, weights]


def _reason(exc: BaseException) -> str:
    """OpenVINO's multi-line error as one line, without its "Check ... failed at <file>" frame."""
    lines = [line.strip().lstrip("-").strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Check ", "Exception from", "Summary:"))]
    return (" ".join(useful) or type(exc).__name__)[:300]


def _version(ov: Any) -> str:
    return ov.__version__.split("-")[0]  # "2026.4.1-22982-e213a147257-releases/2026/4" -> "2026.4.1"
