"""``sdk::batched_nms`` through every path against the reference.

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
from sdk.trt_plugins.batched_nms import batched_nms_reference
from sdk.trt_plugins.onnx_lowerings import translation_table

pytestmark = pytest.mark.filterwarnings("ignore:# The axis name:UserWarning")  # one Dim shared by inputs

EXPORT_BATCH, RUN_BATCH = 2, 3
FLAVORS = ("onnxruntime", "tensorrt")


class NmsSuite(torch.nn.Module):
    """Calls ``sdk::batched_nms`` once per config on inputs ``(boxes_0, scores_0, boxes_1, ...)``."""

    def __init__(self, configs):
        super().__init__()
        self.configs = list(configs)

    def forward(self, *inputs):
        outputs = []
        for i, config in enumerate(self.configs):
            outputs.extend(torch.ops.sdk.batched_nms(inputs[2 * i], inputs[2 * i + 1], *config.op_args()))
        return tuple(outputs)


def _suite_inputs(configs, make_nms_inputs, dataset: str, batch: int) -> list[torch.Tensor]:
    return [t for config in configs for t in make_nms_inputs(config, dataset, batch=batch, seed=batch)]


def _batch_dynamic(example, batch) -> tuple:
    """``dynamic_shapes`` for ``forward(*inputs)``: one spec tuple for the varargs."""
    return (tuple({0: batch} for _ in example),)


def _config_outputs(outputs, configs, config) -> list:
    i = configs.index(config)
    return list(outputs[4 * i : 4 * i + 4])


@pytest.fixture(scope="module")
def sessions(all_nms_configs, make_nms_inputs, tmp_path_factory):
    """flavor -> (model path, ONNX Runtime session), exported once per flavor."""
    example = _suite_inputs(all_nms_configs, make_nms_inputs, "random", EXPORT_BATCH)
    batch = torch.export.Dim("batch", min=1, max=16)
    result = {}
    for flavor in FLAVORS:
        program = torch.onnx.export(
            NmsSuite(all_nms_configs).eval(),
            tuple(example),
            dynamo=True,
            opset_version=18,
            custom_translation_table=translation_table(flavor, 18),
            dynamic_shapes=_batch_dynamic(example, batch),
            verbose=False,
        )
        path = tmp_path_factory.mktemp("nms") / f"{flavor}.onnx"
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
def onnx_outputs(sessions, all_nms_configs, make_nms_inputs):
    """(flavor, dataset) -> all outputs of the suite on a batch of RUN_BATCH, computed once."""
    cache = {}

    def run(flavor: str, dataset: str):
        if (flavor, dataset) not in cache:
            session = sessions[flavor][1]
            inputs = _suite_inputs(all_nms_configs, make_nms_inputs, dataset, RUN_BATCH)
            feed = {arg.name: t.numpy() for arg, t in zip(session.get_inputs(), inputs)}
            cache[flavor, dataset] = session.run(None, feed)
        return cache[flavor, dataset]

    return run


def test_custom_op_eager_matches_reference(nms_config, nms_dataset, make_nms_inputs, check_nms):
    boxes, scores = make_nms_inputs(nms_config, nms_dataset, batch=RUN_BATCH)
    check_nms(
        torch.ops.sdk.batched_nms(boxes, scores, *nms_config.op_args()),
        batched_nms_reference(boxes, scores, *nms_config.op_args()),
    )


def test_opcheck(all_nms_configs, make_nms_inputs):
    for config in (all_nms_configs[0], all_nms_configs[4]):
        boxes, scores = make_nms_inputs(config, "random", batch=2)
        torch.library.opcheck(torch.ops.sdk.batched_nms.default, (boxes, scores, *config.op_args()))


def test_torch_export_has_static_shapes_and_dynamic_batch(all_nms_configs, make_nms_inputs, check_nms):
    example = _suite_inputs(all_nms_configs, make_nms_inputs, "random", EXPORT_BATCH)
    batch = torch.export.Dim("batch", min=1, max=16)
    program = torch.export.export(
        NmsSuite(all_nms_configs).eval(), tuple(example), dynamic_shapes=_batch_dynamic(example, batch)
    )
    output_node = next(n for n in program.graph.nodes if n.op == "output")
    shapes = [tuple(node.meta["val"].shape) for node in output_node.args[0]]
    for config, first in zip(all_nms_configs, range(0, len(shapes), 4)):
        k = config.max_det
        assert [s[1:] for s in shapes[first : first + 4]] == [(1,), (k, 4), (k,), (k,)]
    for dataset in ("random", "ties"):
        inputs = _suite_inputs(all_nms_configs, make_nms_inputs, dataset, RUN_BATCH)
        outputs = program.module()(*inputs)
        for i, config in enumerate(all_nms_configs):
            expected = batched_nms_reference(inputs[2 * i], inputs[2 * i + 1], *config.op_args())
            check_nms(_config_outputs(outputs, all_nms_configs, config), expected)


@pytest.mark.parametrize("flavor", FLAVORS)
def test_onnx_matches_reference(
    flavor, nms_config, nms_dataset, onnx_outputs, all_nms_configs, make_nms_inputs, check_nms
):
    outputs = onnx_outputs(flavor, nms_dataset)
    boxes, scores = make_nms_inputs(nms_config, nms_dataset, batch=RUN_BATCH, seed=RUN_BATCH)
    expected = batched_nms_reference(boxes, scores, *nms_config.op_args())
    check_nms(_config_outputs(outputs, all_nms_configs, nms_config), expected)


def test_onnxruntime_flavor_is_standard_and_batch_native(sessions):
    model = onnx.load(str(sessions["onnxruntime"][0]))
    ops = {(n.domain, n.op_type) for n in model.graph.node}
    assert all(domain in ("", "ai.onnx") for domain, _ in ops), ops
    assert {("", "NonMaxSuppression"), ("", "TopK")} <= ops
    assert not ops & {("", "Loop"), ("", "Scan"), ("", "If"), ("", "SequenceMap")}


def test_tensorrt_flavor_is_one_sdk_node_per_call(sessions, all_nms_configs):
    model = onnx.load(str(sessions["tensorrt"][0]))
    nodes = [n for n in model.graph.node if n.domain == "sdk"]
    assert [n.op_type for n in nodes] == ["BatchedNMS"] * len(all_nms_configs)
    assert not any(n.op_type == "NonMaxSuppression" for n in model.graph.node)
    assert {(o.domain, o.version) for o in model.opset_import} >= {("sdk", 1)}
    types = onnx.AttributeProto
    for node, config in zip(nodes, all_nms_configs):
        attrs = {a.name: a for a in node.attribute}
        assert {k: a.type for k, a in attrs.items()} == {
            "score_threshold": types.FLOAT, "iou_threshold": types.FLOAT, "max_det": types.INT,
            "class_agnostic": types.INT,
        }
        assert attrs["max_det"].i == config.max_det and attrs["class_agnostic"].i == int(config.class_agnostic)
        assert attrs["iou_threshold"].f == pytest.approx(config.iou_threshold)
        assert len(node.input) == 3 and len(node.output) == 4
