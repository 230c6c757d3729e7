"""The HTTP front-end through stock tritonclient.http, requests and sdk.serving.Client:
health, metadata, config, v2 inference (JSON and binary), /predictions uploads, the page."""

from __future__ import annotations

import json

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from serving_support import CLASSES, MAX_DET, MODEL_NAME, PREPROCESS, png_bytes

from sdk import Detector
from sdk.preprocess import Preprocess
from sdk.serving import Client


@pytest.fixture(scope="module")
def triton(server):
    with httpclient.InferenceServerClient(server.http_url.removeprefix("http://")) as client:
        yield client


@pytest.fixture(scope="module")
def detector(model_dir):
    return Detector(model_dir)


def bytes_input(blobs: list[bytes]) -> httpclient.InferInput:
    data = np.array(blobs, dtype=np.object_).reshape(-1, 1)
    infer_input = httpclient.InferInput("images", list(data.shape), "BYTES")
    infer_input.set_data_from_numpy(data)
    return infer_input


def assert_rows_equal(rows, want) -> None:
    """TorchServe rows against a ``Detections`` from ``Detector``."""
    assert len(want) == 1 and len(rows) == len(want)  # one object per scene: the comparison is not vacuous
    for row, box, score, label in zip(rows, want.boxes, want.scores, want.labels):
        assert row["class_label"] == int(label) and row["class_name"] == CLASSES[int(label)]
        np.testing.assert_allclose(row["bbox"], box, atol=1e-4)
        assert row["score"] == pytest.approx(float(score), abs=1e-6)


def test_health_and_server_metadata(triton):
    assert triton.is_server_live() and triton.is_server_ready()
    assert triton.is_model_ready(MODEL_NAME) and triton.is_model_ready(MODEL_NAME, "1")
    assert not triton.is_model_ready("no_such_model") and not triton.is_model_ready(MODEL_NAME, "7")
    meta = triton.get_server_metadata()
    assert meta["name"] == "sdk-detect" and "binary_tensor_data" in meta["extensions"]


def test_model_metadata_and_config(triton):
    meta = triton.get_model_metadata(MODEL_NAME)
    assert meta["name"] == MODEL_NAME and meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "images", "datatype": "BYTES", "shape": [-1, 1]}]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        "num_dets": [-1, 1], "boxes": [-1, MAX_DET, 4], "scores": [-1, MAX_DET], "labels": [-1, MAX_DET],
    }
    assert triton.get_model_metadata(MODEL_NAME, "1") == meta
    config = triton.get_model_config(MODEL_NAME)
    assert config["name"] == MODEL_NAME and config["max_batch_size"] == 8
    assert config["dynamic_batching"]["max_queue_delay_microseconds"] == 2000
    assert [o["dims"] for o in config["output"]] == [[1], [MAX_DET, 4], [MAX_DET], [MAX_DET]]
    assert json.loads(config["parameters"]["classes"]["string_value"]) == list(CLASSES)
    assert Preprocess.from_dict(json.loads(config["parameters"]["preprocess"]["string_value"])) == PREPROCESS


@pytest.mark.parametrize("binary_outputs", [True, False], ids=["binary-outputs", "json-outputs"])
def test_wiring_bytes_batch_equals_detector(triton, detector, scenes, binary_outputs):
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary_outputs) for n in ("num_dets", "boxes", "scores", "labels")]
    result = triton.infer(MODEL_NAME, [bytes_input([png_bytes(s) for s in scenes])], outputs=outputs, request_id="r1")
    response = result.get_response()
    assert response["id"] == "r1" and response["model_name"] == MODEL_NAME
    assert all(("data" in o) != binary_outputs for o in response["outputs"])
    num, boxes, scores, labels = (result.as_numpy(n) for n in ("num_dets", "boxes", "scores", "labels"))
    assert num.shape == (3, 1) and num.dtype == np.int32 and boxes.shape == (3, MAX_DET, 4) and boxes.dtype == np.float32
    for i, want in enumerate(detector(scenes, channel_order="rgb")):
        n = int(num[i, 0])
        assert n == len(want) == 1
        np.testing.assert_allclose(boxes[i, :n], want.boxes, atol=1e-4)
        np.testing.assert_allclose(scores[i, :n], want.scores, atol=1e-6)
        np.testing.assert_array_equal(labels[i, :n], want.labels)
        assert not boxes[i, n:].any() and not scores[i, n:].any()


def test_default_outputs_come_binary(triton, scenes):
    """tritonclient.http without ``outputs`` asks binary_data_output: every output comes raw."""
    result = triton.infer(MODEL_NAME, [bytes_input([png_bytes(scenes[0])])])
    assert all("parameters" in o and "data" not in o for o in result.get_response()["outputs"])
    assert int(result.as_numpy("labels")[0, 0]) == 0


def test_uint8_input_binary_and_json(triton, detector, scenes):
    batch = np.stack([scenes[0], scenes[0][::-1].copy()])
    expected = detector(list(batch), channel_order="rgb")
    for binary in (True, False):  # raw after the JSON header, or JSON numbers
        infer_input = httpclient.InferInput("images", list(batch.shape), "UINT8")
        infer_input.set_data_from_numpy(batch, binary_data=binary)
        result = triton.infer(MODEL_NAME, [infer_input], outputs=[httpclient.InferRequestedOutput("boxes")])
        assert result.as_numpy("num_dets") is None  # only the requested output comes back
        for i, want in enumerate(expected):
            np.testing.assert_allclose(result.as_numpy("boxes")[i, :1], want.boxes, atol=1e-4)


def test_request_parameters_and_compression(triton, scenes):
    blobs = [png_bytes(s) for s in scenes]
    everything = triton.infer(MODEL_NAME, [bytes_input(blobs)])
    scores = everything.as_numpy("scores")[:, 0]
    cut = float(sorted(scores)[1])
    kept = triton.infer(MODEL_NAME, [bytes_input(blobs)], parameters={"score_threshold": cut})
    assert kept.as_numpy("num_dets").ravel().tolist() == [int(s >= cut) for s in scores]
    zipped = triton.infer(MODEL_NAME, [bytes_input(blobs)], request_compression_algorithm="gzip")
    np.testing.assert_array_equal(zipped.as_numpy("boxes"), everything.as_numpy("boxes"))


def test_statistics_over_http_count_both_protocols(triton, server, scenes):
    import tritonclient.grpc as grpcclient

    before = triton.get_inference_statistics(MODEL_NAME)["model_stats"][0]
    triton.infer(MODEL_NAME, [bytes_input([png_bytes(scenes[0])])])
    with grpcclient.InferenceServerClient(server.url) as grpc_client:  # the same batcher and counters
        data = np.array([png_bytes(scenes[1])], dtype=np.object_).reshape(1, 1)
        infer_input = grpcclient.InferInput("images", [1, 1], "BYTES")
        infer_input.set_data_from_numpy(data)
        grpc_client.infer(MODEL_NAME, [infer_input])
    after = triton.get_inference_statistics(MODEL_NAME)["model_stats"][0]
    assert after["inference_count"] - before["inference_count"] == 2
    assert after["inference_stats"]["success"]["count"] - before["inference_stats"]["success"]["count"] == 2
    assert [m["name"] for m in triton.get_inference_statistics()["model_stats"]] == [MODEL_NAME]


def test_predictions_raw_put_and_post(server, detector, scenes):
    url = f"{server.http_url}/predictions/{MODEL_NAME}"
    put = requests.put(url, data=png_bytes(scenes[1]), timeout=30)  # what `curl -T img` sends
    assert put.status_code == 200 and put.headers["Content-Type"].startswith("application/json")
    assert_rows_equal(put.json(), detector(scenes[1], channel_order="rgb"))
    post = requests.post(url + "/1", data=png_bytes(scenes[2]), headers={"Content-Type": "image/png"}, timeout=30)
    assert_rows_equal(post.json(), detector(scenes[2], channel_order="rgb"))


def test_predictions_multipart_and_query(server, detector, scenes, tmp_path):
    url = f"{server.http_url}/predictions/{MODEL_NAME}"
    files = [("data", (f"{i}.png", png_bytes(s), "image/png")) for i, s in enumerate(scenes)]
    reply = requests.post(url, files=files, timeout=30).json()
    assert len(reply) == 3  # several files: one list of rows per file, in order
    for rows, want in zip(reply, detector(scenes, channel_order="rgb")):
        assert_rows_equal(rows, want)
    single = requests.post(url, files={"file": ("a.png", png_bytes(scenes[0]))}, timeout=30).json()
    assert_rows_equal(single, detector(scenes[0], channel_order="rgb"))  # one file: its rows
    scores = [rows[0]["score"] for rows in reply]
    cut = sorted(scores)[1]
    kept = requests.post(url, files=files, params={"score_thr": cut, "max_det": 1}, timeout=30).json()
    assert [len(rows) for rows in kept] == [int(s >= cut) for s in scores]


def test_wiring_client_over_http_equals_detector(server, detector, scenes, tmp_path):
    paths = []
    for i, scene in enumerate(scenes):
        paths.append(tmp_path / f"img{i}.png")
        paths[-1].write_bytes(png_bytes(scene))
    with Client(server.http_url) as client:
        assert client.live() and client.ready() and client.model == MODEL_NAME and client.classes == CLASSES
        for got, want in zip(client.detect(paths), detector(paths)):
            np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4)
            np.testing.assert_array_equal(got.labels, want.labels)
        same = [scenes[0], scenes[0][:, ::-1].copy()]  # one size: a UINT8 tensor
        for got, want in zip(client.detect(same, channel_order="rgb"), detector(same, channel_order="rgb")):
            np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4)
        assert client.metadata()["max_batch_size"] == 8
    with Client(f"grpc://{server.url}") as client:
        assert [int(d.labels[0]) for d in client.detect(paths)] == [0, 1, 2]


def test_page_is_served(server):
    page = requests.get(server.http_url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "/predictions/" in page.text and "<script" in page.text
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert "http://" not in page.text and "https://" not in page.text  # nothing from elsewhere: works offline
