"""``translation_table`` keys and errors, opset 17, half precision, and ``ort_ops`` plumbing."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from sdk.trt_plugins import ort_ops
from sdk.trt_plugins.batched_nms import batched_nms_reference
from sdk.trt_plugins.multilevel_roi_align import multilevel_roi_align_reference
from sdk.trt_plugins.onnx_lowerings import translation_table

pytestmark = pytest.mark.filterwarnings("ignore:# The axis name:UserWarning")  # one Dim shared by inputs

SCALES = [1 / 4, 1 / 8, 1 / 16, 1 / 32]


class Detector(torch.nn.Module):
    """Both ops in one graph, as a two-stage detector's deploy module uses them."""

    def forward(self, boxes, scores, rois, p2, p3, p4, p5):
        pooled = torch.ops.sdk.multilevel_roi_align(rois, [p2, p3, p4, p5], [7, 7], 2, False, SCALES)
        return (*torch.ops.sdk.batched_nms(boxes, scores, 0.25, 0.5, 10, 32, False), pooled)


def _inputs(make_nms_inputs, make_roi_inputs, all_nms_configs, batch: int, dtype: torch.dtype):
    boxes, scores = make_nms_inputs(all_nms_configs[0], "random", batch=batch, seed=batch)
    rois, features = make_roi_inputs("levels", batch=batch, rois=5, seed=batch)
    return [t.to(dtype) for t in (boxes, scores)] + [rois] + [f.to(dtype) for f in features]


@pytest.mark.parametrize("flavor", ["onnxruntime", "tensorrt"])
def test_translation_table_keys(flavor):
    table = translation_table(flavor, 18)
    assert set(table) == {torch.ops.sdk.batched_nms.default, torch.ops.sdk.multilevel_roi_align.default}
    assert all(callable(fn) for fn in table.values())


@pytest.mark.parametrize("flavor, opset", [("tensorrt_plugin", 18), ("onnx", 18), ("onnxruntime", 16)])
def test_translation_table_rejects(flavor, opset):
    with pytest.raises(ValueError):
        translation_table(flavor, opset)


def test_opset17_half_precision_graph(make_nms_inputs, make_roi_inputs, all_nms_configs):
    """fp16 inputs, opset 17, batch 2 -> 3; both ops in one graph on stock ONNX Runtime."""
    example = _inputs(make_nms_inputs, make_roi_inputs, all_nms_configs, 2, torch.float16)
    batch = torch.export.Dim("batch", min=1, max=8)
    program = torch.onnx.export(
        Detector().eval(), tuple(example), dynamo=True, opset_version=17,
        custom_translation_table=translation_table("onnxruntime", 17),
        dynamic_shapes=tuple({0: batch} for _ in example), verbose=False,
    )
    assert {(o.domain, o.version) for o in program.model_proto.opset_import} >= {("", 17)}
    session = ort.InferenceSession(program.model_proto.SerializeToString(), providers=["CPUExecutionProvider"])
    inputs = _inputs(make_nms_inputs, make_roi_inputs, all_nms_configs, 3, torch.float16)
    outputs = session.run(None, {a.name: t.numpy() for a, t in zip(session.get_inputs(), inputs)})
    expected_nms = batched_nms_reference(inputs[0], inputs[1], 0.25, 0.5, 10, 32, False)
    for actual, expected in zip(outputs[:4], expected_nms):
        assert actual.dtype == expected.numpy().dtype
        torch.testing.assert_close(torch.from_numpy(actual), expected, atol=1e-5, rtol=0)
    expected_roi = multilevel_roi_align_reference(inputs[2], inputs[3:], [7, 7], 2, False, SCALES)
    assert outputs[4].dtype == expected_roi.numpy().dtype  # float16 in, float16 out
    torch.testing.assert_close(torch.from_numpy(outputs[4]), expected_roi, atol=2e-3, rtol=1e-3)


def _sdk_model(op_type: str, num_inputs: int, **attrs) -> onnx.ModelProto:
    names = [f"x{i}" for i in range(num_inputs)]
    node = helper.make_node(op_type, names, ["y"], domain="sdk", **attrs)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("sdk", 1)])


def test_prepare_model_rewrites_a_copy():
    model = _sdk_model("MultiLevelRoIAlign", 3, output_size=[7, 7], spatial_scales=[0.25, 0.125])
    before = model.SerializeToString()
    prepared = ort_ops.prepare_model(model)
    assert model.SerializeToString() == before
    (node,) = prepared.graph.node
    assert (node.domain, node.op_type) == (ort_ops.CONTRIB_DOMAIN, "SdkMultiLevelRoIAlign_3")
    assert [a.name for a in node.attribute] == [ort_ops.ATTRIBUTES_KEY]
    assert {o.domain for o in prepared.opset_import} == {"", ort_ops.CONTRIB_DOMAIN}


@pytest.mark.parametrize(
    "op_type, num_inputs", [("EfficientNMS", 2), ("MultiLevelRoIAlign", ort_ops.MAX_FEATURE_MAPS + 2)]
)
def test_prepare_model_rejects_unsupported_nodes(op_type, num_inputs):
    with pytest.raises(ValueError, match=op_type):
        ort_ops.prepare_model(_sdk_model(op_type, num_inputs))


def test_session_options():
    options = ort_ops.session_options(intra_op_num_threads=1)
    assert isinstance(options, ort.SessionOptions) and options.intra_op_num_threads == 1
    with pytest.raises(ValueError, match="no_such_option"):
        ort_ops.session_options(no_such_option=1)
