"""``export_onnx`` on a toy DeployModule-shaped network: flavors, batch range, checks.

The real detectors' exports are tested in ``tests/models/deploy``; here the
converter's own behaviour, fast.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from tiny_deploy import PREPROCESS, TinyDeploy

from sdk.converters.onnx_export import export_onnx, simplify_onnx, uses_custom_ops
from sdk.errors import ConfigError
from sdk.trt_plugins import ort_ops

SHAPE = PREPROCESS.static_shape


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("onnx")
    return {flavor: export_onnx(TinyDeploy(), folder / f"{flavor}.onnx", flavor=flavor, input_shape=SHAPE, max_batch=4)
            for flavor in ("onnxruntime", "tensorrt")}


def _images(batch: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, 3, *SHAPE), dtype=np.uint8)


@pytest.mark.parametrize("flavor", ["onnxruntime", "tensorrt"])
def test_both_flavors_match_the_module_at_other_batches(exported, flavor):
    path = exported[flavor]
    session = (ort_ops.inference_session(path) if flavor == "tensorrt"
               else ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]))
    assert [i.name for i in session.get_inputs()] == ["images"]
    assert [o.name for o in session.get_outputs()] == ["num_dets", "boxes", "scores", "labels"]
    for batch in (1, 3, 4):  # traced at 2
        images = _images(batch, seed=batch)
        got = session.run(None, {"images": images})
        with torch.no_grad():
            want = [t.numpy() for t in TinyDeploy()(torch.from_numpy(images))]
        assert int(want[0].min()) > 0, "the toy network must detect something"
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_allclose(got[1], want[1], atol=1e-4)
        np.testing.assert_allclose(got[2], want[2], atol=1e-6)
        np.testing.assert_array_equal(got[3], want[3])


def test_custom_nodes_only_in_the_tensorrt_flavor(exported):
    assert uses_custom_ops(exported["onnxruntime"]) == []
    assert uses_custom_ops(exported["tensorrt"]) == ["BatchedNMS"]
    dims = onnx.load(str(exported["onnxruntime"])).graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param and [d.dim_value for d in dims[1:]] == [3, *SHAPE]


def test_max_batch_one_gives_a_static_graph(tmp_path):
    path = export_onnx(TinyDeploy(), tmp_path / "one.onnx", flavor="onnxruntime", input_shape=SHAPE, max_batch=1)
    assert onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim[0].dim_value == 1


def test_simplify_is_optional_and_skips_custom_nodes(exported, tmp_path):
    import shutil

    copy = tmp_path / "trt.onnx"
    shutil.copy(exported["tensorrt"], copy)
    assert simplify_onnx(copy) is False  # sdk:: nodes: left unchanged
    assert copy.read_bytes() == exported["tensorrt"].read_bytes()


def test_bad_arguments(tmp_path):
    with pytest.raises(ConfigError, match="flavor"):
        export_onnx(TinyDeploy(), tmp_path / "x.onnx", flavor="openvino", input_shape=SHAPE, max_batch=2)
    with pytest.raises(ConfigError, match="max_batch"):
        export_onnx(TinyDeploy(), tmp_path / "x.onnx", flavor="onnxruntime", input_shape=SHAPE, max_batch=0)
