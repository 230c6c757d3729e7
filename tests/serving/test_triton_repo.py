"""`sdk triton-repo`: a Triton model repository whose model runs the bare network."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
from google.protobuf import text_format
from serving_support import CLASSES, MAX_DET, PREPROCESS, make_scenes
from tritonclient.grpc import model_config_pb2

from sdk import Detector
from sdk.cli.main import main
from sdk.converters.triton_repo import write_triton_repository
from sdk.errors import ConfigError
from sdk.postprocess import decode_outputs
from sdk.preprocess import Preprocess, preprocess_batch


def test_cli_writes_a_repository(model_dir, tmp_path, capsys):
    out = tmp_path / "repo"
    argv = ["triton-repo", str(model_dir), str(out), "--max-batch-size", "4", "--max-queue-delay-us", "100", "--instances", "2"]
    assert main(argv) == 0
    assert "Triton serves the bare network" in capsys.readouterr().out
    config = text_format.Parse((out / "bright" / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    assert config.name == "bright" and config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 4
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    assert config.instance_group[0].count == 2
    assert config.instance_group[0].kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
    (inp,) = config.input
    assert (inp.name, inp.data_type, list(inp.dims)) == ("images", model_config_pb2.TYPE_UINT8, [3, *PREPROCESS.size])
    outputs = {o.name: (o.data_type, list(o.dims)) for o in config.output}
    assert outputs == {
        "num_dets": (model_config_pb2.TYPE_INT32, [1]),
        "boxes": (model_config_pb2.TYPE_FP32, [MAX_DET, 4]),
        "scores": (model_config_pb2.TYPE_FP32, [MAX_DET]),
        "labels": (model_config_pb2.TYPE_INT32, [MAX_DET]),
    }
    assert json.loads(config.parameters["classes"].string_value) == list(CLASSES)
    assert (out / "bright" / "README.md").is_file()


def test_wiring_repository_model_plus_client_side_preprocessing_equals_detector(model_dir, tmp_path):
    """What a Triton client does: preprocess, run the network, map boxes back."""
    target = write_triton_repository(model_dir, tmp_path / "repo", model_name="det")
    config = text_format.Parse((target / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
    pre = Preprocess.from_dict(json.loads(config.parameters["preprocess"].string_value))
    classes = json.loads(config.parameters["classes"].string_value)
    images = make_scenes()
    batch, records = preprocess_batch(images, pre)
    session = ort.InferenceSession(str(target / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in config.output]
    outputs = dict(zip(names, session.run(names, {config.input[0].name: batch})))
    got = decode_outputs(outputs, records, classes)
    want = Detector(model_dir)(images, channel_order="rgb")
    for g, w in zip(got, want):
        assert len(w) == 1
        np.testing.assert_allclose(g.boxes, w.boxes, atol=1e-4)
        assert g.names == w.names


def test_refuses_a_batch_above_the_model_dir(model_dir, tmp_path):
    with pytest.raises(ConfigError, match="max_batch_size must be in 1..8"):
        write_triton_repository(model_dir, tmp_path, max_batch_size=64)


def test_the_same_client_talks_to_triton_serving_the_repository(model_dir, tmp_path):
    from serving_support import png_bytes
    from triton_standin import triton_standin

    from sdk.serving import Client

    root = write_triton_repository(model_dir, tmp_path / "repo", max_batch_size=2)
    scenes = make_scenes()
    expected = Detector(model_dir)(scenes, channel_order="rgb")
    with triton_standin(root) as url, Client(url) as client:
        assert client.model == "bright" and client.network_input() is not None
        assert client.classes == tuple(CLASSES)
        # three images over a max batch of 2; encoded bytes and RGB arrays alike
        for got in (client.detect([png_bytes(s) for s in scenes]), client.detect(scenes, channel_order="rgb")):
            assert len(got) == len(expected)
            for ours, ref in zip(got, expected):
                np.testing.assert_allclose(ours.boxes, ref.boxes, atol=1e-4)
                np.testing.assert_array_equal(ours.labels, ref.labels)
                np.testing.assert_allclose(ours.scores, ref.scores, atol=1e-6)
        assert [len(d) for d in client.detect(scenes, channel_order="rgb", max_detections=0)] == [0, 0, 0]
