"""``sdk.trt_plugins.tensorrt_registration`` without TensorRT: the ``sdk::`` nodes of a real
TensorRT-flavor export, and the plugin output descriptors checked against the graph
and against ONNX Runtime running that graph (``sdk.trt_plugins.ort_ops``)."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import types

import numpy as np
import onnx
import pytest
import torch
from tiny_deploy import POSTPROCESS, PREPROCESS, TinyDeploy, random_images

from sdk.converters.onnx_export import export_onnx
from sdk.trt_plugins.tensorrt_registration import (
    NMS_PLUGIN,
    ROI_ALIGN_PLUGIN,
    Launch,
    batched_nms_outputs,
    multilevel_roi_align_output,
    nms_launch,
    plugin_nodes,
    plugins_of,
    register_plugins,
    roi_align_launch,
)
from sdk.errors import BackendUnavailableError

_ONNX_DTYPES = {onnx.TensorProto.FLOAT: "float32", onnx.TensorProto.INT32: "int32"}


@pytest.fixture(scope="module")
def tensorrt_onnx(tmp_path_factory):
    torch.set_num_threads(1)
    return export_onnx(
        TinyDeploy(), tmp_path_factory.mktemp("trt") / "model.onnx", flavor="tensorrt",
        input_shape=PREPROCESS.size, max_batch=4,
    )


def test_plugin_nodes_carry_the_exported_attributes(tensorrt_onnx):
    (node,) = plugin_nodes(tensorrt_onnx)
    assert node.plugin == NMS_PLUGIN and plugins_of(tensorrt_onnx) == [NMS_PLUGIN]
    assert node.outputs == ("num_dets", "boxes", "scores", "labels")
    attrs = node.attributes
    assert (attrs["max_det"], attrs["class_agnostic"]) == (POSTPROCESS["max_det"], 0)
    graph = onnx.load(str(tensorrt_onnx)).graph
    producers = {out: n.op_type for n in graph.node for out in n.output}
    assert producers[node.inputs[1]] == "TopK" and len(node.inputs) == 3  # pre-NMS top-k in the graph
    assert attrs["score_threshold"] == pytest.approx(POSTPROCESS["score_thr"])
    assert attrs["iou_threshold"] == pytest.approx(POSTPROCESS["iou_thr"])


def test_nms_descriptors_match_the_graph_outputs(tensorrt_onnx):
    (node,) = plugin_nodes(tensorrt_onnx)
    graph_outputs = {o.name: o.type.tensor_type for o in onnx.load(str(tensorrt_onnx)).graph.output}
    descriptors = batched_nms_outputs("batch", node.attributes["max_det"])
    for desc, name in zip(descriptors, node.outputs, strict=True):
        tensor_type = graph_outputs[name]
        assert desc.dtype == _ONNX_DTYPES[tensor_type.elem_type], name
        assert list(desc.shape) == [d.dim_value or d.dim_param for d in tensor_type.shape.dim], name


def test_nms_descriptors_match_a_real_run_of_the_graph(tensorrt_onnx):
    from sdk.trt_plugins import ort_ops

    images = random_images(3, seed=4)  # not the export's example batch
    outputs = ort_ops.inference_session(tensorrt_onnx).run(None, {"images": images.numpy()})
    for desc, array in zip(batched_nms_outputs(3, POSTPROCESS["max_det"]), outputs, strict=True):
        assert (array.dtype, array.shape) == (np.dtype(desc.dtype), desc.shape), desc.name
    for got, want in zip(outputs, TinyDeploy()(images), strict=True):
        np.testing.assert_allclose(got, want.detach().numpy(), atol=1e-4)


def test_roi_align_descriptor_matches_the_op():
    rois = torch.tensor([[[10.0, 10.0, 200.0, 150.0], [0.0, 0.0, 40.0, 40.0]]]).repeat(2, 1, 1)
    features = [torch.randn(2, 5, 64 // s, 64 // s) for s in (1, 2, 4, 8)]
    pooled = torch.ops.sdk.multilevel_roi_align(rois, features, [7, 6], 2, False, [1 / 4, 1 / 8, 1 / 16, 1 / 32])
    desc = multilevel_roi_align_output(tuple(rois.shape), 5, (7, 6), "float32")
    assert desc.shape == tuple(pooled.shape) and desc.dtype == str(pooled.dtype).removeprefix("torch.")


def test_descriptor_arguments_are_checked():
    with pytest.raises(ValueError, match="max_det"):
        batched_nms_outputs(2, 0)
    with pytest.raises(ValueError, match="rois"):
        multilevel_roi_align_output((2, 4), 5, (7, 7), "float32")


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="checks the error without TensorRT")
def test_registering_without_tensorrt_names_the_package():
    with pytest.raises(BackendUnavailableError, match="tensorrt"):
        register_plugins(arch=90)


def test_launches_from_shapes():
    assert nms_launch(3, 4096) == Launch((3, 1, 1), (4096,))
    shapes = [(2, 20, 64 // s, 96 // s) for s in (1, 2, 4, 8)]
    launch = roi_align_launch((2, 50, 4), shapes, 16)
    assert launch.grid == (100, 2, 1) and launch.scalars == (50, 20, 64, 96, 32, 48, 16, 24, 8, 12)


class _FakeTensorDesc:
    """Stands in for ``tensorrt.plugin.TensorDesc``: only ``shape_expr`` and ``dtype``."""

    def __init__(self, shape_expr=(), dtype="float32"):
        self.shape_expr, self.dtype = tuple(shape_expr), dtype


class _KernelLaunchParams:
    grid_x = grid_y = grid_z = block_x = block_y = block_z = shared_mem = None


def _fake_tensorrt(registry: dict) -> tuple[types.ModuleType, types.ModuleType]:
    """``tensorrt`` and ``tensorrt.plugin`` doubles recording what gets registered, and
    enforcing the documented rules: a ``register`` function annotates every argument and
    its return value with live objects (not strings); an ``aot_impl`` takes the register
    function's arguments, then ``outputs`` and ``tactic``."""
    trt = types.ModuleType("tensorrt")
    trt.int32, trt.float32, trt.float16 = "int32", "float32", "float16"
    trtp = types.ModuleType("tensorrt.plugin")
    trtp.TensorDesc, trtp.Tensor = _FakeTensorDesc, object
    trtp.from_shape_expr = lambda shape, dtype: (tuple(shape), dtype)
    trtp.AutoTuneCombination = lambda io_types, layouts: (io_types, layouts)
    trtp.KernelLaunchParams = _KernelLaunchParams
    trtp.SymIntExprs = lambda n: [None] * n
    trtp.SymInt32 = lambda expr: ("i32", expr)
    trtp.cdiv = lambda a, b: ("cdiv", a, b)

    def decorator(kind):
        def named(plugin_id):
            def record(fn):
                params = list(inspect.signature(fn).parameters.values())
                if kind == "register":
                    assert all(p.annotation is not inspect.Parameter.empty for p in params)
                    assert not any(isinstance(p.annotation, str) for p in params)
                    assert inspect.signature(fn).return_annotation is not inspect.Signature.empty
                if kind == "aot_impl":
                    declared = list(inspect.signature(registry[("register", plugin_id)]).parameters)
                    assert [p.name for p in params] == [*declared, "outputs", "tactic"]
                registry[(kind, plugin_id)] = fn
                return fn
            return record
        return named

    trtp.register, trtp.autotune = decorator("register"), decorator("autotune")
    trtp.impl, trtp.aot_impl = decorator("impl"), decorator("aot_impl")
    trt.plugin = trtp
    return trt, trtp


def test_plugin_registration_wires_descriptors_autotune_and_aot_kernels(monkeypatch):
    from sdk.trt_plugins import tensorrt_registration as tensorrt_plugins
    from sdk.trt_plugins._triton_aot import AotKernel
    from sdk.trt_plugins.batched_nms import single_launch
    from sdk.trt_plugins.multilevel_roi_align import triton_kernel

    registry: dict = {}
    trt, trtp = _fake_tensorrt(registry)
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setitem(sys.modules, "tensorrt.plugin", trtp)
    monkeypatch.setattr(tensorrt_plugins, "_registered", False)
    compiled = []  # the real compile runs in tests/trt_plugins/test_triton_compile.py (needs TRITON_INTERPRET unset)

    def fake_compile(name):
        def compile_aot(**kwargs):
            compiled.append((name, kwargs))
            return AotKernel(f"{name}_kernel", f"// ptx of {name}", 128, 0)
        return compile_aot

    monkeypatch.setattr(single_launch, "compile_aot", fake_compile("nms"))
    monkeypatch.setattr(triton_kernel, "compile_aot", fake_compile("roi"))
    assert register_plugins(arch=80) is True
    assert register_plugins(arch=86) is True  # idempotent; the SM follows the latest build
    assert set(registry) == {(k, p) for k in ("register", "autotune", "aot_impl") for p in (NMS_PLUGIN, ROI_ALIGN_PLUGIN)}

    nms_inputs = (_FakeTensorDesc(("B", 64, 4)), _FakeTensorDesc(("B", 64)), _FakeTensorDesc(("B", 64), "int32"))
    nms_outputs = registry[("register", NMS_PLUGIN)](*nms_inputs, 0.3, 0.5, 7, 0)
    assert nms_outputs == ((("B", 1), "int32"), (("B", 7, 4), "float32"), (("B", 7), "float32"), (("B", 7), "int32"))
    name, ptx, params, scalars = registry[("aot_impl", NMS_PLUGIN)](*nms_inputs, 0.3, 0.5, 7, 0, nms_outputs, 0)
    assert (name, ptx) == ("nms_kernel", "// ptx of nms") and scalars == [("i32", 64)]
    assert (params.grid_x, params.grid_y, params.block_x, params.shared_mem) == ("B", 1, 128, 0)
    assert compiled[-1] == ("nms", {"arch": 86, "num_cand": 64, "score_threshold": 0.3, "iou_threshold": 0.5,
                                    "max_det": 7, "class_agnostic": False})
    with pytest.raises(ValueError, match="must be static"):
        registry[("aot_impl", NMS_PLUGIN)](nms_inputs[0], _FakeTensorDesc(("B", "M")), nms_inputs[2],
                                           0.3, 0.5, 7, 0, nms_outputs, 0)

    features = [_FakeTensorDesc(("B", 16, 64 // s, 64 // s), "float16") for s in (1, 2, 4, 8)]
    attrs = (np.array([7, 7], np.int32), 2, 0, np.array([1 / 4, 1 / 8, 1 / 16, 1 / 32], np.float32), 224, 4)
    pooled = registry[("register", ROI_ALIGN_PLUGIN)](_FakeTensorDesc(("B", "R", 4)), *features, *attrs)
    assert pooled == (("B", "R", 16, 7, 7), "float16")
    _, _, params, scalars = registry[("aot_impl", ROI_ALIGN_PLUGIN)](
        _FakeTensorDesc((2, 50, 4)), *features, *attrs, [pooled], 0)
    assert (params.grid_x, params.grid_y) == (100, ("cdiv", 16, triton_kernel.BLOCK_C))
    assert [s[1] for s in scalars] == [50, 16, 64, 64, 32, 32, 16, 16, 8, 8]
    assert compiled[-1][1]["dtype"] == "fp16" and compiled[-1][1]["spatial_scales"] == pytest.approx(
        [1 / 4, 1 / 8, 1 / 16, 1 / 32])
    ((io_types, _),) = registry[("autotune", NMS_PLUGIN)](*nms_inputs, None)
    assert io_types.replace(" ", "").split(",") == ["FP32", "FP32", "INT32", "INT32", "FP32", "FP32", "INT32"]
