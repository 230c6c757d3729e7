"""Malformed HTTP requests get the HTTP status mapped from the gRPC one and a JSON
``{"error": ...}`` saying what was wrong; the server goes on serving both protocols."""

from __future__ import annotations

import contextlib
import json
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from serving_support import MODEL_NAME, GatedBackend, png_bytes, serve
from tritonclient.utils import InferenceServerException

from sdk.serving import Client, ServerError


@pytest.fixture(scope="module")
def triton(server):
    with httpclient.InferenceServerClient(server.http_url.removeprefix("http://")) as client:
        yield client


@pytest.fixture(scope="module")
def good_png(scenes) -> bytes:
    return png_bytes(scenes[0])


def tensor(name: str, data: np.ndarray, datatype: str) -> httpclient.InferInput:
    infer_input = httpclient.InferInput(name, list(data.shape), datatype)
    infer_input.set_data_from_numpy(data)
    return infer_input


def blobs(*items: bytes) -> np.ndarray:
    return np.array(items, dtype=np.object_).reshape(-1, 1)


def infer_error(triton, inputs, model=MODEL_NAME, **kwargs) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        triton.infer(model, inputs, **kwargs)
    return info.value


def post_v2(server, doc: dict, binary: bytes = b"", header_length: int | None = None) -> requests.Response:
    body = json.dumps(doc).encode()
    headers = {}
    if binary or header_length is not None:
        headers["Inference-Header-Content-Length"] = str(len(body) if header_length is None else header_length)
    return requests.post(f"{server.http_url}/v2/models/{MODEL_NAME}/infer", data=body + binary, headers=headers, timeout=30)


def test_unknown_model_and_version(triton, server, good_png):
    error = infer_error(triton, [tensor("images", blobs(good_png), "BYTES")], model="nope")
    assert error.status() == "404" and "unknown model 'nope'" in error.message() and MODEL_NAME in error.message()
    error = infer_error(triton, [tensor("images", blobs(good_png), "BYTES")], model_version="3")
    assert error.status() == "404"
    for call in (triton.get_model_metadata, triton.get_model_config, triton.get_inference_statistics):
        with pytest.raises(InferenceServerException) as info:
            call("nope")
        assert info.value.status() == "404"
    reply = requests.put(f"{server.http_url}/predictions/nope", data=good_png, timeout=30)
    assert reply.status_code == 404 and "unknown model 'nope'" in reply.json()["error"]


@pytest.mark.parametrize(
    "make_inputs, message",
    [
        (lambda png: [tensor("pixels", blobs(png), "BYTES")], "exactly one input named 'images'"),
        (lambda png: [tensor("images", blobs(png), "BYTES"), tensor("extra", blobs(png), "BYTES")], "exactly one input"),
        (lambda png: [tensor("images", np.zeros((1, 8, 8, 3), np.float32), "FP32")], "datatype FP32"),
        (lambda png: [tensor("images", np.zeros((1, 8, 8), np.uint8), "UINT8")], "[N, H, W, 3]"),
        (lambda png: [tensor("images", np.zeros((1, 8, 8, 4), np.uint8), "UINT8")], "[N, H, W, 3]"),
        (lambda png: [tensor("images", blobs(png, png).reshape(1, 2), "BYTES")], "shape [N, 1] or [N]"),
        (lambda png: [tensor("images", blobs(b"\x00\x01garbage"), "BYTES")], "image 0 of 1: not a readable image"),
        (lambda png: [tensor("images", blobs(png, png[: len(png) // 3]), "BYTES")], "image 1 of 2"),
        (lambda png: [tensor("images", blobs(b""), "BYTES")], "empty image data"),
        (lambda png: [tensor("images", np.zeros((0, 1), np.object_), "BYTES")], "at least one image"),
        (lambda png: [tensor("images", np.zeros((0, 8, 8, 3), np.uint8), "UINT8")], "at least one image"),
    ],
    ids=[
        "input-name", "two-inputs", "datatype", "uint8-rank", "uint8-channels", "bytes-shape",
        "undecodable", "truncated-second", "empty-bytes", "empty-batch-bytes", "empty-batch-uint8",
    ],
)
def test_invalid_argument_is_400(triton, good_png, make_inputs, message):
    """The gRPC INVALID_ARGUMENT cases of test_bad_requests.py, through tritonclient.http."""
    error = infer_error(triton, make_inputs(good_png))
    assert error.status() == "400" and message in error.message()


@pytest.mark.parametrize(
    "doc, binary, header_length, message",
    [
        ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [3, 1], "parameters": {"binary_data_size": 9}}]},
         (5).to_bytes(4, "little") + b"hello", None, "declares 3 element(s) but carries 1"),
        ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1, 1], "parameters": {"binary_data_size": 9}}]},
         (1000).to_bytes(4, "little") + b"short", None, "malformed"),
        ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 8, 8, 3], "parameters": {"binary_data_size": 10}}]},
         b"\x00" * 10, None, "needs 192 bytes; got 10"),
        ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2, 2, 3], "parameters": {"binary_data_size": 50}}]},
         b"\x00" * 12, None, "binary_data_size 50"),
        ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 2, 2, 3], "parameters": {"binary_data_size": 12}}]},
         b"\x00" * 20, None, "8 byte(s) follow the JSON header"),
        ({"inputs": []}, b"", 10_000, "Inference-Header-Content-Length"),
        ({"inputs": [{"name": "images", "datatype": "UINT8", "shape": [1, 1, 1, 3], "data": [1, 2, 300]}]}, b"", None, "0..255"),
        ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1], "data": [7]}]}, b"", None, "must be strings"),
        ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": [1]}]}, b"", None, "neither 'data' nor"),
        ({"inputs": [{"name": "images", "datatype": "BYTES", "shape": "1"}]}, b"", None, "shape must be a JSON list"),
        ({"inputs": "images"}, b"", None, "inputs must be a JSON list"),
        ({"inputs": [], "parameters": {"score_threshold": [1]}}, b"", None, "must be a number, string or boolean"),
    ],
    ids=[
        "count-lies", "bytes-malformed", "uint8-short", "binary-size-past-end", "unclaimed-bytes", "header-length",
        "json-uint8-range", "json-bytes-not-string", "no-data", "shape-type", "inputs-type", "parameter-type",
    ],
)
def test_malformed_rest_bodies_are_400(server, doc, binary, header_length, message):
    """Bodies tritonclient would refuse to build: sizes and counts that lie, JSON of the wrong shape."""
    reply = post_v2(server, doc, binary, header_length)
    assert reply.status_code == 400 and message in reply.json()["error"]


def test_not_json_is_400(server):
    reply = requests.post(f"{server.http_url}/v2/models/{MODEL_NAME}/infer", data=b"\xff{not json", timeout=30)
    assert reply.status_code == 400 and "not valid JSON" in reply.json()["error"]


def test_bad_parameters_and_outputs(triton, good_png):
    inputs = [tensor("images", blobs(good_png), "BYTES")]
    for params, message in (
        ({"score_threshold": 1.5}, "must be in [0, 1]"),
        ({"max_detections": 0}, "must be >= 1"),
        ({"max_detections": "ten"}, "wrong type"),
        ({"colour": "red"}, "unknown request parameter 'colour'"),
    ):
        error = infer_error(triton, inputs, parameters=params)
        assert error.status() == "400" and message in error.message()
    error = infer_error(triton, inputs, outputs=[httpclient.InferRequestedOutput("masks")])
    assert error.status() == "400" and "masks" in error.message()


def test_oversize_body_is_413(server):
    big = np.zeros((1, 1024, 1024, 3), np.uint8)  # 3 MiB > the fixture's 1 MiB limit
    doc = {"inputs": [{"name": "images", "datatype": "UINT8", "shape": list(big.shape), "parameters": {"binary_data_size": big.nbytes}}]}
    reply = post_v2(server, doc, big.tobytes())
    assert reply.status_code == 413 and "--max-message-mb" in reply.json()["error"]
    reply = requests.put(f"{server.http_url}/predictions/{MODEL_NAME}", data=big.tobytes(), timeout=30)
    assert reply.status_code == 413


def test_predictions_bad_inputs(server, good_png):
    url = f"{server.http_url}/predictions/{MODEL_NAME}"
    cases = [
        (requests.put(url, data=b"", timeout=30), 400, "empty request body"),
        (requests.put(url, data=b"\x00\x01garbage", timeout=30), 400, "not a readable image"),
        (requests.post(url, files={"a": ("a.png", good_png), "b": ("b.png", b"junk")}, timeout=30), 400, "image 1 of 2"),
        (requests.post(url, data={"note": "no file"}, timeout=30), 400, "not a readable image"),  # a raw body
        (requests.post(url, files={"x": (None, "text only")}, timeout=30), 400, "the form has no image"),
        (requests.put(url, data=good_png, params={"score_thr": "high"}, timeout=30), 400, "'score_thr' must be a number"),
        (requests.put(url, data=good_png, params={"score_thr": "2"}, timeout=30), 400, "must be in [0, 1]"),
        (requests.put(url, data=good_png, params={"max_det": "0"}, timeout=30), 400, "'max_det' must be >= 1"),
        (requests.put(url, data=good_png, params={"colour": "red"}, timeout=30), 400, "unknown query parameter 'colour'"),
        (requests.get(url, timeout=30), 405, "Method Not Allowed"),
    ]
    for reply, status, message in cases:
        assert reply.status_code == status and message in reply.json()["error"], reply.text


def test_unknown_paths_and_unimplemented_extensions(triton, server):
    reply = requests.get(f"{server.http_url}/v2/nothing/here", timeout=30)
    assert reply.status_code == 404 and reply.json()["error"]
    with pytest.raises(InferenceServerException) as info:
        triton.get_model_repository_index()
    assert info.value.status() == "501"


@contextlib.contextmanager
def gated_server(model_dir, scenes, **settings):
    """A gRPC + HTTP server whose one instance is held inside ``infer`` by a gRPC request until
    ``gate.set()``; yields ``(thread, gate, backend, queued)`` (``queued()``: images waiting)."""
    gate = threading.Event()
    gate.set()  # open while the server warms up
    backends: list[GatedBackend] = []

    def wrap(backend):
        backends.append(GatedBackend(backend, gate))
        return backends[-1]

    with serve(model_dir, backend_wrapper=wrap, max_batch_size=1, http_port=0, **settings) as thread:
        gate.clear()
        backends[0].entered.clear()
        backends[0].batch_sizes.clear()
        held = threading.Thread(target=lambda: Client(thread.url).detect(png_bytes(scenes[0])))
        held.start()
        assert backends[0].entered.wait(20)  # the instance is busy with the gRPC request

        def queued() -> float:
            return thread.server.metrics.registry.get_sample_value("sdk_serving_queue_images", {"model": MODEL_NAME})

        try:
            yield thread, gate, backends[0], queued
        finally:
            gate.set()
            held.join(30)


def wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_full_queue_is_429_and_shared_with_grpc(model_dir, scenes):
    """One batcher serves both protocols: a request held over gRPC fills the queue HTTP sees."""
    with gated_server(model_dir, scenes, max_queue_size=1) as (thread, gate, backend, queued):
        answers: list = []
        waiting = threading.Thread(target=lambda: answers.append(requests.put(
            f"{thread.http_url}/predictions/{MODEL_NAME}", data=png_bytes(scenes[1]), timeout=60)))
        waiting.start()
        wait_until(lambda: queued() == 1)
        full = requests.put(f"{thread.http_url}/predictions/{MODEL_NAME}", data=png_bytes(scenes[2]), timeout=30)
        assert full.status_code == 429 and "queue is full" in full.json()["error"]
        with pytest.raises(ServerError) as info:  # the client maps 429 back to the gRPC name
            Client(thread.http_url).detect(png_bytes(scenes[2]))
        assert info.value.status == "RESOURCE_EXHAUSTED"
        gate.set()
        waiting.join(30)
        assert answers[0].status_code == 200 and answers[0].json()[0]["class_name"] == "green"


def test_a_client_that_hangs_up_is_dropped_before_inference(model_dir, scenes):
    with gated_server(model_dir, scenes) as (thread, gate, backend, queued):
        with pytest.raises(requests.exceptions.Timeout):
            requests.put(f"{thread.http_url}/predictions/{MODEL_NAME}", data=png_bytes(scenes[1]), timeout=0.5)
        wait_until(lambda: queued() == 0)  # its image left the queue when the connection closed
        gate.set()
        assert requests.put(f"{thread.http_url}/predictions/{MODEL_NAME}", data=png_bytes(scenes[2]), timeout=30).ok
        assert backend.batch_sizes == [1, 1]  # the held request and the last one; never the abandoned one


def test_server_still_serves_after_bad_requests(server, triton, scenes):
    # run after the other tests of this module: the same server still answers both protocols
    assert triton.is_server_ready()
    with Client(server.http_url) as client:
        assert [int(d.labels[0]) for d in client.detect([png_bytes(s) for s in scenes])] == [0, 1, 2]
        with pytest.raises(ServerError) as info:
            client.detect(b"garbage")
        assert info.value.status == "INVALID_ARGUMENT"
    with Client(server.url) as client:
        assert int(client.detect(png_bytes(scenes[2])).labels[0]) == 2
    stats = triton.get_inference_statistics(MODEL_NAME)["model_stats"][0]
    assert stats["inference_stats"]["fail"]["count"] >= 20
