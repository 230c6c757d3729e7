"""The bright-box ONNX "detector": a hand-built graph that finds the one bright object
in each image, deterministically from pixels (runtime, serving and analysis tests):

- mask = max over RGB > ``THRESHOLD`` (the letterbox pad value 114 and a black
  background stay below it);
- box = [first, last + 1) column and row of the mask (x1, y1, x2, y2, network pixels);
- score = 0.5 + 0.4 * (mask area / input area);
- label = the RGB channel brightest inside the mask (pure red 0, green 1, blue 2);
- rows 1..K-1 are zero padding, ``num_dets`` = 1 when any pixel is bright, else 0.

So a test draws a coloured rectangle at known original pixels (``draw_scene``) and
checks where it comes back. Built with ``onnx.helper`` in the test process only: the
runtime under test never imports onnx or torch. It runs in well under a millisecond.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper

from sdk.preprocess import Preprocess

THRESHOLD = 200.0
CLASSES = ("red", "green", "blue")


def build_bright_box_onnx(
    path: Path,
    *,
    max_det: int = 5,
    input_dtype: str = "uint8",
    preprocess: Preprocess | None = None,
    fixed_batch: int | None = None,
    output_names: tuple[str, ...] = ("num_dets", "boxes", "scores", "labels"),
) -> Path:
    """Write the bright-object graph; ``input_dtype="float32"`` takes normalized input
    (the graph undoes ``preprocess``'s mean/std first)."""
    k = max_det
    nodes, inits = [], []

    def const(name: str, value, dtype=np.float32) -> str:
        inits.append(onnx.numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def node(op: str, inputs: list[str], output: str, **attrs) -> str:
        nodes.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    x = node("Cast", ["images"], "x", to=TensorProto.FLOAT)
    if input_dtype == "float32":  # undo (x - mean) / std
        pre = preprocess or Preprocess()
        std = const("std", np.reshape(pre.std, (1, 3, 1, 1)))
        mean = const("mean", np.reshape(pre.mean, (1, 3, 1, 1)))
        x = node("Add", [node("Mul", [x, std], "x_std"), mean], "x_raw")
    chmax = node("ReduceMax", [x], "chmax", axes=[1], keepdims=0)  # [B, H, W]
    mask = node("Cast", [node("Greater", [chmax, const("thr", THRESHOLD)], "bright")], "mask", to=TensorProto.FLOAT)
    col = node("ReduceMax", [mask], "col", axes=[1], keepdims=0)  # [B, W]
    row = node("ReduceMax", [mask], "row", axes=[2], keepdims=0)  # [B, H]
    one = const("one", [1], np.int64)
    x1 = node("ArgMax", [col], "x1", axis=1, keepdims=1)
    y1 = node("ArgMax", [row], "y1", axis=1, keepdims=1)
    x2 = node("Add", [node("ArgMax", [col], "x2_last", axis=1, keepdims=1, select_last_index=1), one], "x2")
    y2 = node("Add", [node("ArgMax", [row], "y2_last", axis=1, keepdims=1, select_last_index=1), one], "y2")
    box_i = node("Concat", [x1, y1, x2, y2], "box_i", axis=1)  # [B, 4]
    found = node("ReduceMax", [col], "found", axes=[1], keepdims=1)  # [B, 1] 0/1
    box = node("Mul", [node("Cast", [box_i], "box_f", to=TensorProto.FLOAT), found], "box")
    frac = node("ReduceMean", [mask], "frac", axes=[1, 2], keepdims=0)  # [B]
    frac = node("Unsqueeze", [frac, const("ax1", [1], np.int64)], "frac1")  # [B, 1]
    score = node(
        "Mul", [node("Add", [node("Mul", [frac, const("c04", 0.4)], "f04"), const("c05", 0.5)], "s"), found], "score"
    )
    masked = node("Mul", [x, node("Unsqueeze", [mask, const("ax1b", [1], np.int64)], "mask4")], "masked")
    chan = node("ReduceMax", [masked], "chan", axes=[2, 3], keepdims=0)  # [B, 3]
    label = node("Cast", [node("ArgMax", [chan], "label64", axis=1, keepdims=1)], "label", to=TensorProto.INT32)

    pad2 = const("pad2", [0, 0, 0, k - 1], np.int64)
    pad3 = const("pad3", [0, 0, 0, 0, k - 1, 0], np.int64)
    box3 = node("Unsqueeze", [box, const("ax1c", [1], np.int64)], "box3")
    names = dict(zip(("num_dets", "boxes", "scores", "labels"), output_names))
    node("Cast", [found], names["num_dets"], to=TensorProto.INT32)
    node("Pad", [box3, pad3], names["boxes"])
    node("Pad", [score, pad2], names["scores"])
    node("Pad", [label, pad2], names["labels"])

    b = fixed_batch or "B"
    in_type = TensorProto.UINT8 if input_dtype == "uint8" else TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "bright_box",
        [helper.make_tensor_value_info("images", in_type, [b, 3, "H", "W"])],
        [
            helper.make_tensor_value_info(names["num_dets"], TensorProto.INT32, [b, 1]),
            helper.make_tensor_value_info(names["boxes"], TensorProto.FLOAT, [b, k, 4]),
            helper.make_tensor_value_info(names["scores"], TensorProto.FLOAT, [b, k]),
            helper.make_tensor_value_info(names["labels"], TensorProto.INT32, [b, k]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def bright_box_model_dir(
    work: Path,
    *,
    preprocess: Preprocess,
    out_name: str = "model_dir",
    max_batch: int = 4,
    min_batch: int = 1,
    max_det: int = 5,
    fixed_batch: int | None = None,
    score_thr: float = 0.05,
    plugins: tuple[str, ...] = (),
    output_names: tuple[str, ...] = ("num_dets", "boxes", "scores", "labels"),
    manifest_input_dtype: str | None = None,
) -> Path:
    """``work/out_name``: an onnxruntime fp32 model_dir (model name ``bright_box``,
    ``CLASSES``) of the bright-box graph for ``preprocess``."""
    from sdk.converters.model_dir import write_model_dir

    onnx_path = build_bright_box_onnx(
        work / "export.onnx", max_det=max_det, input_dtype="uint8" if preprocess.normalize_in_graph else "float32",
        preprocess=preprocess, fixed_batch=fixed_batch, output_names=output_names,
    )
    return write_model_dir(
        work / out_name, model_file=onnx_path, backend="onnxruntime", flavor="onnxruntime", precision="fp32",
        model_name="bright_box", classes=CLASSES, preprocess=preprocess,
        postprocess={"score_thr": score_thr, "iou_thr": 0.5, "max_det": max_det},
        input_shape=preprocess.static_shape or (-1, -1), max_batch=max_batch, min_batch=min_batch,
        input_dtype=manifest_input_dtype, plugins=plugins, move=True,
    )


def draw_scene(h: int, w: int, box: tuple[int, int, int, int], rgb=(255, 0, 0), background: int = 0) -> np.ndarray:
    """An (h, w, 3) uint8 RGB image, ``background`` everywhere except ``rgb`` in the
    box x1, y1, x2, y2 (pixels x1..x2-1, y1..y2-1)."""
    img = np.full((h, w, 3), background, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = rgb
    return img
