"""The dense kernels behind the physical reference, per runtime and precision.

Each ``Kernel`` is one large dense operation run by the same runtime a backend uses,
so its rate is what that runtime can reach on this machine at that precision:

- ONNX Runtime (CPU provider): one-node ONNX MatMul (n x n @ n x n) and 3x3 Conv
  (C -> C at HxW) graphs built with ``onnx.helper`` in fp32; ``MatMulInteger``
  (u8 x s8 -> s32) and QDQ MatMul/Conv (fused to QLinear kernels) in int8.
- OpenVINO (CPU plugin): the same fp32 graphs with ``INFERENCE_PRECISION_HINT`` f32,
  bf16 and f16; the QDQ graphs in int8.
- numpy ``a @ b`` (fp32); torch matmul and channels_last ``conv2d`` in fp32 and bf16.

A convolution-heavy detector is better bounded by the Conv rate than by the MatMul
one; the reference takes the best of both. FLOPs: 2 per multiply-accumulate
(``torch.utils.flop_counter``'s convention, which counts the models); for int8 these
are integer operations. Building a kernel (a session, a compiled model) is done by
``Kernel.build`` outside the timed calls.
"""

from __future__ import annotations

import importlib.util
import io
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import numpy as np

MATMUL_N = 2048  # 17 GFLOP: ~60 ms in fp32 on one modern core pair, long enough to time AMX int8
CONV_C, CONV_HW = 256, 64  # 3x3 Conv 256 -> 256 at 64x64: 4.8 GFLOP, a ResNet stage-3/4 sized layer


@dataclass(frozen=True)
class Kernel:
    """One dense operation to time.

    Attributes:
        name: label in reports, e.g. ``"openvino Conv3x3 bf16"``.
        runtime: ``"onnxruntime"``, ``"openvino"``, ``"numpy"`` or ``"torch"``.
        op: ``"matmul"`` or ``"conv"``.
        precision: the precision asked for (``"fp32"``, ``"bf16"``, ``"fp16"``, ``"int8"``).
        shape: human-readable problem size.
        flops: FLOPs (or integer ops) of one call.
        build: () -> (run, actual precision or None): prepares the call outside the timing;
            the actual precision is what the runtime reports it used (OpenVINO may ignore a hint).
    """

    name: str
    runtime: str
    op: str
    precision: str
    shape: str
    flops: float
    build: Callable[[], tuple[Callable[[], Any], str | None]]


def matmul_onnx(n: int, kind: str) -> bytes:
    """A serialized ONNX model: ``A [n, n] @ B`` with ``B`` a constant. ``kind``: ``"fp32"``
    (MatMul), ``"int8"`` (MatMulInteger, input uint8, output int32) or ``"qdq"`` (float
    input, Quantize/Dequantize around a MatMul on int8 weights: the static-quantization form)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    if kind == "int8":
        nodes = [helper.make_node("MatMulInteger", ["A", "B"], ["Y"])]
        inits = {"B": rng.integers(-127, 128, (n, n), dtype=np.int8)}
        return _model(nodes, inits, ("A", TensorProto.UINT8, [n, n]), ("Y", TensorProto.INT32, [n, n]))
    if kind == "fp32":
        nodes = [helper.make_node("MatMul", ["A", "B"], ["Y"])]
        return _model(nodes, {"B": rng.standard_normal((n, n), dtype=np.float32)},
                      ("A", TensorProto.FLOAT, [n, n]), ("Y", TensorProto.FLOAT, [n, n]))
    nodes, inits = _qdq("MatMul", rng.integers(-127, 128, (n, n), dtype=np.int8), {})
    return _model(nodes, inits, ("A", TensorProto.FLOAT, [n, n]), ("Y", TensorProto.FLOAT, [n, n]))


def conv_onnx(c: int, hw: int, kind: str) -> bytes:
    """A serialized ONNX model: 3x3 Conv, ``c`` -> ``c`` channels, stride 1, pad 1, on
    float input [1, c, hw, hw]; ``kind`` ``"fp32"`` or ``"qdq"`` (int8 weights and activations)."""
    from onnx import TensorProto, helper

    rng = np.random.default_rng(0)
    io_info = (("A", TensorProto.FLOAT, [1, c, hw, hw]), ("Y", TensorProto.FLOAT, [1, c, hw, hw]))
    if kind == "fp32":
        nodes = [helper.make_node("Conv", ["A", "B"], ["Y"], pads=[1, 1, 1, 1])]
        return _model(nodes, {"B": 0.05 * rng.standard_normal((c, c, 3, 3), dtype=np.float32)}, *io_info)
    nodes, inits = _qdq("Conv", rng.integers(-127, 128, (c, c, 3, 3), dtype=np.int8), {"pads": [1, 1, 1, 1]})
    return _model(nodes, inits, *io_info)


def _qdq(op: str, weights_q: np.ndarray, attrs: dict[str, Any]) -> tuple[list, dict[str, np.ndarray]]:
    """QuantizeLinear/DequantizeLinear around ``op`` (per-tensor scales): the pattern ONNX
    Runtime fuses into QLinear* kernels and OpenVINO runs in int8."""
    from onnx import helper

    nodes = [
        helper.make_node("QuantizeLinear", ["A", "sa", "za"], ["Aq"]),
        helper.make_node("DequantizeLinear", ["Aq", "sa", "za"], ["Ad"]),
        helper.make_node("DequantizeLinear", ["B", "sb", "zb"], ["Bd"]),
        helper.make_node(op, ["Ad", "Bd"], ["M"], **attrs),
        helper.make_node("QuantizeLinear", ["M", "sy", "zy"], ["Mq"]),
        helper.make_node("DequantizeLinear", ["Mq", "sy", "zy"], ["Y"]),
    ]
    inits = {"B": weights_q, "sa": np.float32(0.05), "za": np.uint8(128), "sb": np.float32(0.05),
             "zb": np.int8(0), "sy": np.float32(1.0), "zy": np.uint8(128)}
    return nodes, inits


def _model(nodes: list, inits: dict[str, np.ndarray], inp: tuple, out: tuple) -> bytes:
    from onnx import helper, numpy_helper

    graph = helper.make_graph(
        nodes, "peak", [helper.make_tensor_value_info(*inp)], [helper.make_tensor_value_info(*out)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]).SerializeToString()


Build = Callable[[], tuple[Callable[[], Any], "str | None"]]


def _ort(model: Callable[[], bytes], feed: np.ndarray, threads: int | None) -> Build:
    """A ``Kernel.build`` running the ONNX model ``model()`` (built only when needed) on
    ONNX Runtime's CPU provider."""

    def build() -> tuple[Callable[[], Any], None]:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or 0  # 0: ONNX Runtime's default, the physical cores
        session = onnxruntime.InferenceSession(model(), options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return (lambda: session.run(None, {name: feed})), None

    return build


def _ov(model: Callable[[], bytes], feed: np.ndarray, hint: str, threads: int | None) -> Build:
    """A ``Kernel.build`` compiling ``model()`` for OpenVINO's CPU plugin with the
    precision hint ``hint`` (``f32``, ``bf16``, ``f16``)."""

    def build() -> tuple[Callable[[], Any], str]:
        import openvino

        core = openvino.Core()
        config = {"INFERENCE_PRECISION_HINT": hint, "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        compiled = core.compile_model(core.read_model(io.BytesIO(model())), "CPU", config)
        request = compiled.create_infer_request()
        actual = compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name()  # what it will really run
        return (lambda: request.infer({0: feed})), _OV_PRECISION.get(actual, actual)

    return build


_OV_PRECISION = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}


def cpu_kernels(*, threads: int | None = None, with_torch: bool = True, with_numpy: bool = True) -> list[Kernel]:
    """Every CPU kernel whose runtime is installed (ONNX Runtime, OpenVINO; numpy; torch
    when ``with_torch``)."""
    n, c, hw = MATMUL_N, CONV_C, CONV_HW
    mm_flops, conv_flops = 2.0 * n**3, 2.0 * c * c * 9 * hw * hw
    mm_shape, conv_shape = f"{n}x{n}x{n}", f"3x3 {c}->{c} at {hw}x{hw}"
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    a_u8 = rng.integers(0, 256, (n, n), dtype=np.uint8)
    x = rng.standard_normal((1, c, hw, hw), dtype=np.float32)
    kernels: list[Kernel] = []

    def add(name: str, runtime: str, op: str, precision: str, build: Build) -> None:
        shape, flops = (mm_shape, mm_flops) if op == "matmul" else (conv_shape, conv_flops)
        kernels.append(Kernel(name, runtime, op, precision, shape, flops, build))

    def graph(op: str, kind: str) -> Callable[[], bytes]:
        return partial(matmul_onnx, n, kind) if op == "matmul" else partial(conv_onnx, c, hw, kind)

    has = {m: importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "openvino")}
    if has["onnx"] and has["onnxruntime"]:
        for label, op, precision, kind, feed in (
            ("MatMul fp32", "matmul", "fp32", "fp32", a), ("Conv3x3 fp32", "conv", "fp32", "fp32", x),
            ("MatMulInteger int8", "matmul", "int8", "int8", a_u8), ("QDQ MatMul int8", "matmul", "int8", "qdq", a),
            ("QDQ Conv3x3 int8", "conv", "int8", "qdq", x),
        ):
            add(f"onnxruntime {label}", "onnxruntime", op, precision, _ort(graph(op, kind), feed, threads))
    if has["onnx"] and has["openvino"]:
        for label, op, precision, kind, feed, hint in (
            ("MatMul fp32", "matmul", "fp32", "fp32", a, "f32"), ("Conv3x3 fp32", "conv", "fp32", "fp32", x, "f32"),
            ("MatMul bf16", "matmul", "bf16", "fp32", a, "bf16"), ("Conv3x3 bf16", "conv", "bf16", "fp32", x, "bf16"),
            ("MatMul fp16", "matmul", "fp16", "fp32", a, "f16"), ("Conv3x3 fp16", "conv", "fp16", "fp32", x, "f16"),
            ("QDQ MatMul int8", "matmul", "int8", "qdq", a, "f32"), ("QDQ Conv3x3 int8", "conv", "int8", "qdq", x, "f32"),
        ):
            add(f"openvino {label}", "openvino", op, precision, _ov(graph(op, kind), feed, hint, threads))
    if with_numpy:
        b = rng.standard_normal((n, n), dtype=np.float32)
        add("numpy matmul fp32", "numpy", "matmul", "fp32", lambda: ((lambda: a @ b), None))
    if with_torch:
        kernels += _torch_cpu_kernels(a, x, mm_shape, mm_flops, conv_shape, conv_flops)
    return kernels


def _torch_cpu_kernels(a: np.ndarray, x: np.ndarray, mm_shape: str, mm_flops: float, conv_shape: str,
                       conv_flops: float) -> list[Kernel]:
    """torch matmul and channels_last conv2d (oneDNN's fastest layout) in fp32 and bf16."""
    torch = sys.modules.get("torch") or __import__("torch")
    out = []
    for dtype, precision in ((torch.float32, "fp32"), (torch.bfloat16, "bf16")):
        def build_mm(dtype=dtype):
            m = torch.from_numpy(a).to(dtype)
            return (lambda: _no_grad(torch, lambda: m @ m)), None

        def build_conv(dtype=dtype):
            inp = torch.from_numpy(x).to(dtype).contiguous(memory_format=torch.channels_last)
            w = (0.05 * torch.randn(x.shape[1], x.shape[1], 3, 3)).to(dtype).contiguous(memory_format=torch.channels_last)
            return (lambda: _no_grad(torch, lambda: torch.nn.functional.conv2d(inp, w, padding=1))), None

        out.append(Kernel(f"torch matmul {precision}", "torch", "matmul", precision, mm_shape, mm_flops, build_mm))
        out.append(Kernel(f"torch conv2d 3x3 channels_last {precision}", "torch", "conv", precision, conv_shape,
                          conv_flops, build_conv))
    return out


def _no_grad(torch: Any, fn: Callable[[], Any]) -> Any:
    with torch.inference_mode():
        return fn()


def cuda_kernels(device: str, n: int = 8192) -> list[Kernel]:
    """torch matmuls on ``device`` in fp32, fp16, bf16 and int8 (``torch._int_mm``)."""
    torch = sys.modules.get("torch") or __import__("torch")
    sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
    out = []
    for dtype, precision in ((torch.float32, "fp32"), (torch.float16, "fp16"), (torch.bfloat16, "bf16"),
                             (torch.int8, "int8")):
        def build(dtype=dtype):
            if dtype == torch.int8:
                m = torch.randint(-127, 128, (n, n), device=device, dtype=torch.int8)
                op = lambda: torch._int_mm(m, m)  # noqa: E731
            else:
                m = torch.randn(n, n, device=device, dtype=dtype)
                op = lambda: m @ m  # noqa: E731
            return (lambda: (op(), sync())), None

        out.append(Kernel(f"torch matmul {precision} cuda", "torch", "matmul", precision, f"{n}x{n}x{n}",
                          2.0 * n**3, build))
    return out
