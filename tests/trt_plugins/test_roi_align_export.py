"""``sdk::multilevel_roi_align`` through every path against the reference.

Eager custom op, ``torch.export`` and ONNX export in both flavors (the TensorRT flavor
run through ``sdk.trt_plugins.ort_ops``). One module holds one op call per config, so
each flavor is exported once (batch 2) and run on batch 3 (dynamic batch axis).
"""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest
import torch

from sdk.trt_plugins import ort_ops
from sdk.trt_plugins.multilevel_roi_align import multilevel_roi_align_reference
from sdk.trt_plugins.onnx_lowerings import translation_table

pytestmark = pytest.mark.filterwarnings("ignore:# The axis name:UserWarning")  # one Dim shared by inputs

EXPORT_BATCH, RUN_BATCH = 2, 3
FLAVORS = ("onnxruntime", "tensorrt")
ATOL = 1e-5


class RoiSuite(torch.nn.Module):
    """Calls ``sdk::multilevel_roi_align`` once per config on ``(rois, p2, p3, p4, p5)``."""

    def __init__(self, configs):
        super().__init__()
        self.configs = list(configs)

    def forward(self, rois, p2, p3, p4, p5):
        features = [p2, p3, p4, p5]
        return tuple(torch.ops.sdk.multilevel_roi_align(rois, features, *c.op_args()) for c in self.configs)


def _dynamic_batch():
    batch = torch.export.Dim("batch", min=1, max=16)
    return tuple({0: batch} for _ in range(5))


@pytest.fixture(scope="module")
def sessions(all_roi_configs, make_roi_inputs, tmp_path_factory):
    """flavor -> (model path, ONNX Runtime session), exported once per flavor."""
    rois, features = make_roi_inputs("levels", batch=EXPORT_BATCH)
    result = {}
    for flavor in FLAVORS:
        program = torch.onnx.export(
            RoiSuite(all_roi_configs).eval(),
            (rois, *features),
            dynamo=True,
            opset_version=18,
            custom_translation_table=translation_table(flavor, 18),
            dynamic_shapes=_dynamic_batch(),
            verbose=False,
        )
        path = tmp_path_factory.mktemp("roi") / f"{flavor}.onnx"
        program.save(str(path))
        if flavor == "tensorrt":
            session = ort_ops.inference_session(path, intra_op_num_threads=1)
        else:
            options = ort.SessionOptions()
            options.intra_op_num_threads = 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        result[flavor] = (path, session)
    return result


@pytest.fixture(scope="module")
def onnx_outputs(sessions, make_roi_inputs):
    cache = {}

    def run(flavor: str, dataset: str):
        if (flavor, dataset) not in cache:
            session = sessions[flavor][1]
            rois, features = make_roi_inputs(dataset, batch=RUN_BATCH, seed=RUN_BATCH)
            feed = {arg.name: t.numpy() for arg, t in zip(session.get_inputs(), (rois, *features))}
            cache[flavor, dataset] = session.run(None, feed)
        return cache[flavor, dataset]

    return run


def test_custom_op_eager_matches_reference(roi_config, roi_dataset, make_roi_inputs):
    rois, features = make_roi_inputs(roi_dataset, batch=RUN_BATCH)
    actual = torch.ops.sdk.multilevel_roi_align(rois, features, *roi_config.op_args())
    expected = multilevel_roi_align_reference(rois, features, *roi_config.op_args())
    assert torch.equal(actual, expected)


def test_opcheck(all_roi_configs, make_roi_inputs):
    rois, features = make_roi_inputs("levels", batch=2, rois=4)
    for config in (all_roi_configs[0], all_roi_configs[3]):
        torch.library.opcheck(
            torch.ops.sdk.multilevel_roi_align.default, (rois, features, *config.op_args()),
            test_utils=("test_schema", "test_faketensor"),
        )


def test_torch_export_has_static_shapes_and_dynamic_batch(all_roi_configs, make_roi_inputs):
    rois, features = make_roi_inputs("levels", batch=EXPORT_BATCH)
    program = torch.export.export(RoiSuite(all_roi_configs).eval(), (rois, *features), dynamic_shapes=_dynamic_batch())
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    shapes = [tuple(node.meta["val"].shape) for node in output_node.args[0]]
    channels = features[0].shape[1]
    assert [s[1:] for s in shapes] == [(rois.shape[1], channels, *c.output_size) for c in all_roi_configs]
    rois, features = make_roi_inputs("degenerate", batch=RUN_BATCH)
    for config, actual in zip(all_roi_configs, program.module()(rois, *features)):
        torch.testing.assert_close(actual, multilevel_roi_align_reference(rois, features, *config.op_args()))


@pytest.mark.parametrize("flavor", FLAVORS)
def test_onnx_matches_reference(flavor, roi_config, roi_dataset, onnx_outputs, all_roi_configs, make_roi_inputs):
    actual = onnx_outputs(flavor, roi_dataset)[all_roi_configs.index(roi_config)]
    rois, features = make_roi_inputs(roi_dataset, batch=RUN_BATCH, seed=RUN_BATCH)
    expected = multilevel_roi_align_reference(rois, features, *roi_config.op_args())
    assert actual.shape == tuple(expected.shape)
    torch.testing.assert_close(torch.from_numpy(actual), expected, atol=ATOL, rtol=0)


def test_onnxruntime_flavor_is_standard_and_batch_native(sessions, all_roi_configs):
    model = onnx.load(str(sessions["onnxruntime"][0]))
    assert all(n.domain in ("", "ai.onnx") for n in model.graph.node)
    roi_aligns = [n for n in model.graph.node if n.op_type == "RoiAlign"]
    assert len(roi_aligns) == 4 * len(all_roi_configs)  # one per level per call
    modes = {
        onnx.helper.get_attribute_value(a)
        for n in roi_aligns for a in n.attribute if a.name == "coordinate_transformation_mode"
    }
    assert modes == {b"half_pixel", b"output_half_pixel"}
    assert not any(n.op_type in ("Loop", "Scan", "If") for n in model.graph.node)


def test_tensorrt_flavor_is_one_sdk_node_per_call(sessions, all_roi_configs):
    model = onnx.load(str(sessions["tensorrt"][0]))
    nodes = [n for n in model.graph.node if n.domain == "sdk"]
    assert [n.op_type for n in nodes] == ["MultiLevelRoIAlign"] * len(all_roi_configs)
    assert not any(n.op_type == "RoiAlign" for n in model.graph.node)
    types = onnx.AttributeProto
    for node, config in zip(nodes, all_roi_configs):
        assert list(node.input)[:1] == ["rois"] and len(node.input) == 5
        attrs = {a.name: a for a in node.attribute}
        assert {k: a.type for k, a in attrs.items()} == {
            "output_size": types.INTS, "sampling_ratio": types.INT, "aligned": types.INT,
            "spatial_scales": types.FLOATS, "canonical_scale": types.INT, "canonical_level": types.INT,
        }
        assert list(attrs["output_size"].ints) == list(config.output_size)
        assert list(attrs["spatial_scales"].floats) == pytest.approx([1 / 4, 1 / 8, 1 / 16, 1 / 32])
        assert (attrs["aligned"].i, attrs["sampling_ratio"].i) == (int(config.aligned), config.sampling_ratio)
        assert (attrs["canonical_scale"].i, attrs["canonical_level"].i) == (224, 4)
