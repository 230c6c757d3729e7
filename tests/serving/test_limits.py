"""Hostile requests (issue 15): images per request, pixels per image from the header,
decoder failures, overflowing shapes, unreadable stream messages."""

from __future__ import annotations

import logging
import struct
import zlib

import grpc
import numpy as np
import pytest
from serving_support import MODEL_NAME, png_bytes, serve
from tritonclient.grpc import service_pb2, service_pb2_grpc

from sdk.errors import ConfigError
from sdk.serving.admission import RequestLimits


def png_claiming(width: int, height: int) -> bytes:
    """A PNG header claiming ``width`` x ``height`` with almost no pixel data (a decoder bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def bytes_request(*images: bytes) -> service_pb2.ModelInferRequest:
    request = service_pb2.ModelInferRequest(model_name=MODEL_NAME)
    request.inputs.add(name="images", datatype="BYTES", shape=[len(images), 1])
    request.raw_input_contents.append(b"".join(struct.pack("<I", len(b)) + b for b in images))
    return request


@pytest.fixture(scope="module")
def limited(model_dir):
    with serve(model_dir, limits=RequestLimits(max_images=4, max_pixels=1_000_000)) as thread:
        with grpc.insecure_channel(thread.url) as channel:
            yield service_pb2_grpc.GRPCInferenceServiceStub(channel)


def status_of(stub, request) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        stub.ModelInfer(request, timeout=30)
    return info.value


def test_images_per_request(limited, scenes):
    good = png_bytes(scenes[0])
    assert len(limited.ModelInfer(bytes_request(*[good] * 4), timeout=30).outputs) == 4
    error = status_of(limited, bytes_request(*[good] * 5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "carries 5 images; this server takes at most 4 per request (--max-images)" in error.details()


@pytest.mark.parametrize("image, message", [
    (png_claiming(60000, 60000), "image 1 of 2: image has more than"),  # was a raw cv2.error: INTERNAL
    (png_claiming(1001, 1000), "image 1 of 2: image is 1001x1000 = 1,001,000 pixels, over the limit of 1,000,000"),
    (png_claiming(300, 200), "image 1 of 2: not a readable image"),  # header fine, pixels missing
    (b"\x00" * 50, "image 1 of 2: not a readable image"),
])
def test_hostile_images_are_invalid_argument(limited, scenes, image, message):
    error = status_of(limited, bytes_request(png_bytes(scenes[0]), image))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in error.details()


@pytest.mark.parametrize("shape, raw", [
    ([2**62, 4, 1, 3], b""),  # N*H*W*3 wraps to 0 in int64: reshape failed, INTERNAL
    ([2**40, 2**20, 2**10, 3], b"\x00" * 3),  # wraps negative: "needs -N bytes"
    ([1, 2000, 2000, 3], b"\x00" * 3),
])
def test_overflowing_uint8_shapes_are_invalid_argument(limited, shape, raw):
    request = service_pb2.ModelInferRequest(model_name=MODEL_NAME, raw_input_contents=[raw])
    request.inputs.add(name="images", datatype="UINT8", shape=shape)
    error = status_of(limited, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    needed = error.details().split("needs ")[1].split(" ")[0]
    assert int(needed) == np.prod(shape, dtype=object)  # the true count, never wrapped


def test_uint8_pixels_per_image_are_limited(limited):
    pixels = np.zeros((1, 1000, 1001, 3), np.uint8)
    request = service_pb2.ModelInferRequest(model_name=MODEL_NAME, raw_input_contents=[pixels.tobytes()])
    request.inputs.add(name="images", datatype="UINT8", shape=list(pixels.shape))
    error = status_of(limited, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "over the limit of 1,000,000" in error.details()


def test_stream_answers_what_it_read_then_fails_on_an_unreadable_message(model_dir, scenes, caplog):
    good = [bytes_request(png_bytes(scenes[i])) for i in range(3)]
    for i, request in enumerate(good):
        request.id = str(i)
    messages = [good[0].SerializeToString(), good[1].SerializeToString(), b"\xff\xff\xff\xff",
                good[2].SerializeToString()]
    caplog.set_level(logging.WARNING, logger="sdk.serving.servicer")
    with serve(model_dir) as thread, grpc.insecure_channel(thread.url) as channel:
        call = channel.stream_stream(
            "/inference.GRPCInferenceService/ModelStreamInfer", request_serializer=lambda raw: raw,
            response_deserializer=service_pb2.ModelStreamInferResponse.FromString,
        )(iter(messages), timeout=30)
        replies = []
        with pytest.raises(grpc.RpcError) as info:
            for reply in call:
                replies.append(reply)
    assert sorted(r.infer_response.id for r in replies) == ["0", "1"]
    assert all(not r.error_message for r in replies)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stream message 3 is not a readable ModelInferRequest" in info.value.details()
    assert any("stream message 3" in r.getMessage() for r in caplog.records)


def test_limits_are_validated():
    with pytest.raises(ConfigError, match="cannot hold one image"):
        RequestLimits(max_pixels=64_000_000, max_inflight_mb=100)
    with pytest.raises(ConfigError, match="--max-images"):
        RequestLimits(max_images=0)


def test_client_splits_long_lists_into_admissible_requests(server, scenes):
    from sdk.serving import Client

    with Client(server.url) as client:
        dets = client.detect([png_bytes(scenes[i % 3]) for i in range(70)])  # 64 + 6
    assert [int(d.labels[0]) for d in dets] == [i % 3 for i in range(70)]
