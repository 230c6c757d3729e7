"""The server through stock tritonclient and sdk.serving.Client: health, metadata, inference."""

from __future__ import annotations

import json
import queue

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from serving_support import CLASSES, MAX_DET, MODEL_NAME, PREPROCESS, png_bytes

from sdk import Detector
from sdk.preprocess import Preprocess
from sdk.serving import Client


@pytest.fixture(scope="module")
def triton(server):
    with grpcclient.InferenceServerClient(server.url) as client:
        yield client


@pytest.fixture(scope="module")
def detector(model_dir):
    return Detector(model_dir)


def bytes_input(blobs: list[bytes]) -> grpcclient.InferInput:
    data = np.array(blobs, dtype=np.object_).reshape(-1, 1)
    infer_input = grpcclient.InferInput("images", list(data.shape), "BYTES")
    infer_input.set_data_from_numpy(data)
    return infer_input


def assert_same(served, expected) -> None:
    assert len(served) == len(expected)
    for got, want in zip(served, expected):
        assert len(want) == 1  # every scene has one object: the comparison is not vacuous
        np.testing.assert_allclose(got.boxes, want.boxes, rtol=0, atol=1e-4)
        np.testing.assert_allclose(got.scores, want.scores, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(got.labels, want.labels)
        assert got.names == want.names


def test_health(triton, server):
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready(MODEL_NAME)
    assert triton.is_model_ready(MODEL_NAME, "1")
    assert not triton.is_model_ready("no_such_model")
    assert not triton.is_model_ready(MODEL_NAME, "7")
    meta = triton.get_server_metadata(as_json=True)
    assert meta["name"] == "sdk-detect" and "model_configuration" in meta["extensions"]


def test_grpc_health_service(server):
    health = pytest.importorskip("grpc_health.v1.health_pb2", reason="grpcio-health-checking not installed")
    import grpc
    from grpc_health.v1 import health_pb2_grpc

    with grpc.insecure_channel(server.url) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", MODEL_NAME):
            reply = stub.Check(health.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health.HealthCheckResponse.SERVING


def test_model_metadata(triton):
    meta = triton.get_model_metadata(MODEL_NAME, as_json=True)
    assert meta["name"] == MODEL_NAME and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "images", "datatype": "BYTES", "shape": ["-1", "1"]}]
    shapes = {o["name"]: (o["datatype"], o["shape"]) for o in meta["outputs"]}
    k = str(MAX_DET)
    assert shapes == {
        "num_dets": ("INT32", ["-1", "1"]),
        "boxes": ("FP32", ["-1", k, "4"]),
        "scores": ("FP32", ["-1", k]),
        "labels": ("INT32", ["-1", k]),
    }


def test_model_config_carries_classes_and_preprocess(triton):
    config = triton.get_model_config(MODEL_NAME).config
    assert config.name == MODEL_NAME and config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 2000
    assert [i.name for i in config.input] == ["images"]
    assert [o.name for o in config.output] == ["num_dets", "boxes", "scores", "labels"]
    assert json.loads(config.parameters["classes"].string_value) == list(CLASSES)
    assert Preprocess.from_dict(json.loads(config.parameters["preprocess"].string_value)) == PREPROCESS


def test_wiring_tritonclient_bytes_batch_equals_detector(triton, detector, scenes):
    result = triton.infer(MODEL_NAME, [bytes_input([png_bytes(s) for s in scenes])])
    num = result.as_numpy("num_dets")
    boxes, scores, labels = (result.as_numpy(n) for n in ("boxes", "scores", "labels"))
    assert num.shape == (3, 1) and num.dtype == np.int32
    assert boxes.shape == (3, MAX_DET, 4) and boxes.dtype == np.float32
    assert scores.shape == labels.shape == (3, MAX_DET) and labels.dtype == np.int32
    expected = detector(scenes, channel_order="rgb")
    for i, want in enumerate(expected):
        n = int(num[i, 0])
        assert n == len(want) == 1
        np.testing.assert_allclose(boxes[i, :n], want.boxes, atol=1e-4)
        np.testing.assert_array_equal(labels[i, :n], want.labels)
        assert not boxes[i, n:].any() and not scores[i, n:].any()  # zero padding


def test_tritonclient_uint8_input(triton, detector, scenes):
    batch = np.stack([scenes[0], scenes[0][::-1].copy()])  # two images of one size, RGB
    infer_input = grpcclient.InferInput("images", list(batch.shape), "UINT8")
    infer_input.set_data_from_numpy(batch)
    result = triton.infer(MODEL_NAME, [infer_input], outputs=[grpcclient.InferRequestedOutput("boxes")])
    assert result.as_numpy("num_dets") is None  # only the requested output comes back
    expected = detector(list(batch), channel_order="rgb")
    for i, want in enumerate(expected):
        np.testing.assert_allclose(result.as_numpy("boxes")[i, :1], want.boxes, atol=1e-4)


def test_client_single_and_batched_equal_detector(server, detector, scenes):
    with Client(server.url) as client:  # model found by asking the server
        assert client.live() and client.ready()
        assert client.model == MODEL_NAME
        assert client.classes == CLASSES
        one = client.detect(png_bytes(scenes[1]))  # one image in, one Detections out (as Detector)
        assert_same([one], [detector(scenes[1], channel_order="rgb")])
        assert_same(client.detect([png_bytes(s) for s in scenes]), detector(scenes, channel_order="rgb"))
        # arrays: BGR by default (the sdk.images convention), mixed sizes -> PNG-encoded
        bgr = [s[:, :, ::-1] for s in scenes]
        assert_same(client.detect(bgr), detector(bgr))
        # same-size arrays -> one UINT8 tensor
        same = [scenes[0], scenes[0][:, ::-1].copy()]
        assert_same(client.detect(same, channel_order="rgb"), detector(same, channel_order="rgb"))


def test_client_file_paths_and_metadata(server, detector, scenes, tmp_path):
    paths = []
    for i, scene in enumerate(scenes):
        paths.append(tmp_path / f"img{i}.png")
        paths[-1].write_bytes(png_bytes(scene))
    with Client(server.url, model=MODEL_NAME) as client:
        assert_same(client.detect(paths), detector(paths))
        meta = client.metadata()
    assert meta["classes"] == list(CLASSES)
    assert Preprocess.from_dict(meta["preprocess"]) == PREPROCESS
    assert meta["max_batch_size"] == 8 and meta["box_format"].startswith("xyxy")


def test_request_parameters(server, scenes):
    blobs = [png_bytes(s) for s in scenes]
    with Client(server.url) as client:
        everything = client.detect(blobs)
        assert all(len(d) == 1 for d in everything)
        scores = [float(d.scores[0]) for d in everything]
        cut = sorted(scores)[1]  # keeps the two best-scoring images' detections
        kept = client.detect(blobs, score_thr=cut)
        assert [len(d) for d in kept] == [int(s >= cut) for s in scores]
        assert all(len(d) == 1 for d in client.detect(blobs, max_detections=1))


def test_a_request_larger_than_max_batch_keeps_order(server, detector, scenes):
    images = [scenes[i % 3] for i in range(19)]  # 19 > max batch 8: spans three batches
    with Client(server.url) as client:
        assert_same(client.detect([png_bytes(im) for im in images]), detector(images, channel_order="rgb"))


def test_stream_infer(triton, scenes):
    replies: queue.Queue = queue.Queue()
    triton.start_stream(callback=lambda result, error: replies.put((result, error)))
    try:
        for i, scene in enumerate(scenes):
            triton.async_stream_infer(MODEL_NAME, [bytes_input([png_bytes(scene)])], request_id=str(i))
        triton.async_stream_infer(MODEL_NAME, [bytes_input([b"not an image"])], request_id="bad")
        got = [replies.get(timeout=30) for _ in range(4)]
    finally:
        triton.stop_stream()
    errors = [error for _, error in got if error is not None]
    assert len(errors) == 1 and "not a readable image" in errors[0].message()
    labels = {r.get_response().id: int(r.as_numpy("labels")[0, 0]) for r, e in got if e is None}
    assert labels == {"0": 0, "1": 1, "2": 2}


def test_statistics_count_images_and_batches(triton, scenes):
    before = triton.get_inference_statistics(MODEL_NAME).model_stats[0]
    triton.infer(MODEL_NAME, [bytes_input([png_bytes(s) for s in scenes])])
    after = triton.get_inference_statistics(MODEL_NAME).model_stats[0]
    assert after.inference_count - before.inference_count == 3
    assert after.inference_stats.success.count - before.inference_stats.success.count == 1
    assert sum(b.compute_infer.count for b in after.batch_stats) >= 1
