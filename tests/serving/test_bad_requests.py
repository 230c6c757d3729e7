"""Malformed requests get the right status and a message saying what was wrong; the server goes on."""

from __future__ import annotations

import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from serving_support import MODEL_NAME, png_bytes
from tritonclient.grpc import service_pb2, service_pb2_grpc
from tritonclient.utils import InferenceServerException

from sdk.serving import Client, ServerError


@pytest.fixture(scope="module")
def triton(server):
    with grpcclient.InferenceServerClient(server.url) as client:
        yield client


def tensor(name: str, data: np.ndarray, datatype: str, shape=None) -> grpcclient.InferInput:
    infer_input = grpcclient.InferInput(name, list(shape or data.shape), datatype)
    infer_input.set_data_from_numpy(data)
    return infer_input


def blobs(*items: bytes) -> np.ndarray:
    return np.array(items, dtype=np.object_).reshape(-1, 1)


def infer_error(triton, inputs, model=MODEL_NAME, **kwargs) -> InferenceServerException:
    with pytest.raises(InferenceServerException) as info:
        triton.infer(model, inputs, **kwargs)
    return info.value


@pytest.fixture(scope="module")
def good_png(scenes) -> bytes:
    return png_bytes(scenes[0])


def test_unknown_model_and_version(triton, good_png):
    error = infer_error(triton, [tensor("images", blobs(good_png), "BYTES")], model="nope")
    assert error.status() == "StatusCode.NOT_FOUND" and "unknown model 'nope'" in error.message()
    assert MODEL_NAME in error.message()  # says what is served
    with pytest.raises(InferenceServerException) as info:
        triton.infer(MODEL_NAME, [tensor("images", blobs(good_png), "BYTES")], model_version="3")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    for call in (triton.get_model_metadata, triton.get_model_config, triton.get_inference_statistics):
        with pytest.raises(InferenceServerException) as info:
            call("nope")
        assert info.value.status() == "StatusCode.NOT_FOUND"


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
def test_invalid_argument(triton, good_png, make_inputs, message):
    error = infer_error(triton, make_inputs(good_png))
    assert error.status() == "StatusCode.INVALID_ARGUMENT"
    assert message in error.message()


def test_declared_shape_must_match_the_payload(server, good_png):
    """Raw requests that tritonclient would refuse to build: counts and sizes that lie."""
    with __import__("grpc").insecure_channel(server.url) as channel:
        stub = service_pb2_grpc.GRPCInferenceServiceStub(channel)
        cases = {
            "declares 3 element(s) but carries 1": ("BYTES", [3, 1], len(good_png).to_bytes(4, "little") + good_png),
            "malformed": ("BYTES", [1, 1], (1000).to_bytes(4, "little") + b"short"),
            "needs 192 bytes; got 10": ("UINT8", [1, 8, 8, 3], b"\x00" * 10),
        }
        for message, (datatype, shape, raw) in cases.items():
            request = service_pb2.ModelInferRequest(model_name=MODEL_NAME, raw_input_contents=[raw])
            request.inputs.add(name="images", datatype=datatype, shape=shape)
            with pytest.raises(Exception) as info:
                stub.ModelInfer(request, timeout=10)
            assert info.value.code().name == "INVALID_ARGUMENT"
            assert message in info.value.details()


def test_bad_parameters_and_outputs(triton, good_png):
    inputs = [tensor("images", blobs(good_png), "BYTES")]
    for params, message in (
        ({"score_threshold": 1.5}, "must be in [0, 1]"),
        ({"max_detections": 0}, "must be >= 1"),
        ({"max_detections": "ten"}, "wrong type"),
        ({"colour": "red"}, "unknown request parameter 'colour'"),
    ):
        error = infer_error(triton, inputs, parameters=params)
        assert error.status() == "StatusCode.INVALID_ARGUMENT" and message in error.message()
    error = infer_error(triton, inputs, outputs=[grpcclient.InferRequestedOutput("masks")])
    assert error.status() == "StatusCode.INVALID_ARGUMENT" and "masks" in error.message()


def test_oversize_message_is_resource_exhausted(triton, server):
    big = np.zeros((1, 1024, 1024, 3), np.uint8)  # 3 MiB > the fixture's 1 MiB limit
    error = infer_error(triton, [tensor("images", big, "UINT8")])
    assert error.status() == "StatusCode.RESOURCE_EXHAUSTED"


def test_server_still_serves_after_bad_requests(server, triton, scenes):
    # run after the other tests of this module: the same server must still answer correctly
    assert triton.is_server_ready()
    with Client(server.url) as client:
        dets = client.detect([png_bytes(s) for s in scenes])
        assert [int(d.labels[0]) for d in dets] == [0, 1, 2]
        with pytest.raises(ServerError) as info:
            client.detect(b"garbage")
        assert info.value.status == "INVALID_ARGUMENT"
    stats = triton.get_inference_statistics(MODEL_NAME).model_stats[0]
    assert stats.inference_stats.fail.count >= 10


def test_unimplemented_rpcs(triton):
    with pytest.raises(InferenceServerException) as info:
        triton.get_model_repository_index()
    assert info.value.status() == "StatusCode.UNIMPLEMENTED"
