"""Helpers for the serving tests: a tiny deterministic ONNX detector, model_dirs and servers.

The graph (copied from ``tests/runtime/conftest.py``, test folders do not import
each other) finds the one bright object in each image, deterministically from pixels:

- mask = max over RGB > ``THRESHOLD`` (the letterbox pad value 114 and a black
  background stay below it);
- box = [first, last + 1) column and row of the mask (x1, y1, x2, y2, network pixels);
- score = 0.5 + 0.4 * (mask area / input area);
- label = the RGB channel brightest inside the mask (pure red 0, green 1, blue 2);
- rows 1..K-1 are zero padding, ``num_dets`` = 1 when any pixel is bright, else 0.

It runs in well under a millisecond, so the tests exercise the server, not the model.
Servers run in-process on a free localhost port (``start_in_thread``); tests talk to
them only through ``tritonclient.grpc`` and ``sdk.serving.Client``. The fixtures
live in ``conftest.py``; test modules import these helpers by name.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper

from sdk.converters.model_dir import write_model_dir
from sdk.preprocess import Preprocess
from sdk.serving.batcher import BatchingConfig
from sdk.serving.model import ServedModel
from sdk.serving.server import ServerOptions, start_in_thread

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
    score = node("Mul", [node("Add", [node("Mul", [frac, const("c04", 0.4)], "f04"), const("c05", 0.5)], "s"), found], "score")
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


def draw_scene(h: int, w: int, box: tuple[int, int, int, int], rgb=(255, 0, 0), background: int = 0) -> np.ndarray:
    """An (h, w, 3) uint8 RGB image, ``background`` everywhere except ``rgb`` in the
    box x1, y1, x2, y2 (pixels x1..x2-1, y1..y2-1)."""
    img = np.full((h, w, 3), background, np.uint8)
    x1, y1, x2, y2 = box
    img[y1:y2, x1:x2] = rgb
    return img


MODEL_NAME = "bright"
MAX_DET = 5
MAX_BATCH = 8
PREPROCESS = Preprocess(mode="letterbox", size=(64, 96))


def make_model_dir(work: Path) -> Path:
    """A bright-box model_dir ``work/bright``: letterbox 64x96, max batch 8, K = 5."""
    onnx_path = build_bright_box_onnx(work / "export.onnx", max_det=MAX_DET, preprocess=PREPROCESS)
    return write_model_dir(
        work / MODEL_NAME,
        model_file=onnx_path,
        backend="onnxruntime",
        flavor="onnxruntime",
        precision="fp32",
        model_name="bright_box",
        classes=CLASSES,
        preprocess=PREPROCESS,
        postprocess={"score_thr": 0.05, "iou_thr": 0.5, "max_det": MAX_DET},
        input_shape=PREPROCESS.static_shape,
        max_batch=MAX_BATCH,
        move=True,
    )


@contextlib.contextmanager
def serve(model_dir: Path, *, backend_wrapper=None, name: str | None = None, **settings):
    """Run a server on a free port for ``model_dir``; ``settings`` split into
    ``BatchingConfig`` fields and ``ServerOptions`` fields. ``backend_wrapper(backend)``
    wraps each instance's backend (e.g. ``GatedBackend``)."""
    batching_keys = {"max_batch_size", "max_queue_delay_us", "preferred_batch_sizes", "max_queue_size", "instances"}
    batching = {k: v for k, v in settings.items() if k in batching_keys}
    options = {k: v for k, v in settings.items() if k not in batching_keys}
    model = ServedModel.from_model_dir(model_dir, name=name)
    if backend_wrapper is not None:
        factory = model.backend_factory
        model = ServedModel(**{**vars(model), "backend_factory": lambda: backend_wrapper(factory())})
    batching.setdefault("max_batch_size", MAX_BATCH)
    thread = start_in_thread([(model, BatchingConfig(**batching))], ServerOptions(**{"port": 0, **options}))
    try:
        yield thread
    finally:
        thread.stop(grace_s=2.0)


class GatedBackend:
    """Wraps a backend: ``infer`` records batch sizes, sets ``entered`` and waits for ``gate``."""

    def __init__(self, backend, gate: threading.Event | None = None) -> None:
        self._backend = backend
        self.min_batch = backend.min_batch
        self.max_batch = backend.max_batch
        self.gate = gate or threading.Event()
        self.entered = threading.Event()
        self.batch_sizes: list[int] = []

    def infer(self, batch):
        self.batch_sizes.append(len(batch))
        self.entered.set()
        if not self.gate.wait(timeout=30):
            raise TimeoutError("test gate never opened")
        return self._backend.infer(batch)


def png_bytes(rgb: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.ascontiguousarray(rgb[:, :, ::-1]))
    assert ok
    return data.tobytes()


def make_scenes() -> list[np.ndarray]:
    """Three RGB images of different sizes, one coloured box each (red, green, blue)."""
    return [
        draw_scene(100, 150, (10, 20, 60, 70), rgb=(255, 0, 0)),
        draw_scene(240, 180, (100, 30, 170, 200), rgb=(0, 255, 0)),
        draw_scene(77, 310, (200, 5, 300, 70), rgb=(0, 0, 255)),
    ]
