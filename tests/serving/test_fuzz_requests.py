"""Fuzzing the request parser and admission (hypothesis): any ModelInferRequest (or any
bytes parsed as one) is either admitted, with images that decode within the limits, or
refused with a ``RequestError`` carrying a gRPC status; nothing else escapes. Bounded for
CI (``SDK_FUZZ_EXAMPLES``, default 150 per target); raise it for a longer run."""

from __future__ import annotations

import os
import struct

import grpc
import numpy as np
import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from serving_support import PREPROCESS, png_bytes
from tritonclient.grpc import service_pb2

from sdk.serving.admission import RequestLimits, request_cost
from sdk.serving.protocol import RequestError, parse_infer_request

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::PIL.Image.DecompressionBombWarning")

EXAMPLES = int(os.environ.get("SDK_FUZZ_EXAMPLES", "150"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize="SDK_FUZZ_EXAMPLES" not in os.environ,
                suppress_health_check=[HealthCheck.too_slow], database=None)
LIMITS = RequestLimits(max_images=8, max_pixels=1 << 16, max_inflight_mb=16)
GOOD = png_bytes(np.full((20, 30, 3), 255, np.uint8))
DIMS = st.one_of(st.integers(-3, 40), st.sampled_from([2**31, 2**40, 2**62, 2**63 - 1]))
ELEMENT = st.one_of(st.just(GOOD), st.binary(max_size=64), st.just(GOOD[:40]), st.just(b""))
MOSTLY_GOOD = st.sampled_from([GOOD] * 6 + [GOOD[:40], GOOD[:-8], b"\x89PNG\r\n\x1a\n", b""])


def _bytes_tensor(elements: list[bytes], lie: int) -> bytes:
    raw = b"".join(struct.pack("<I", len(e) + (lie if i == 0 else 0) & 0xFFFFFFFF) + e for i, e in enumerate(elements))
    return raw


@st.composite
def requests(draw) -> service_pb2.ModelInferRequest:
    """Mostly well-formed requests (so admission and decoding run), with every field
    sometimes wrong: names, datatypes, shapes (huge, negative, lying), contents, parameters."""
    request = service_pb2.ModelInferRequest(model_name="bright", id=draw(st.text(max_size=4)))
    wellformed = draw(st.integers(0, 2)) > 0  # two in three: only the image bytes are hostile
    for _ in range(1 if wellformed else draw(st.sampled_from([1, 0, 2]))):
        name = "images" if wellformed else draw(st.sampled_from(["images", "pixels"]))
        datatype = draw(st.sampled_from(["BYTES", "UINT8"] if wellformed else ["BYTES", "UINT8", "FP32", ""]))
        honest = wellformed or draw(st.booleans())
        if datatype == "BYTES":
            elements = draw(st.lists(MOSTLY_GOOD if wellformed else ELEMENT, min_size=1 if wellformed else 0,
                                     max_size=10))
            shape = [len(elements), 1] if honest else draw(st.lists(DIMS, max_size=5))
            raw = _bytes_tensor(elements, 0 if honest else draw(st.sampled_from([0, 1, -1, 2**31])))
        else:
            dims = [draw(st.integers(1, 3)), draw(st.integers(1, 300)), draw(st.integers(1, 300)), 3]
            shape = dims if honest else draw(st.lists(DIMS, max_size=5))
            size = int(np.prod(dims)) if honest else draw(st.integers(0, 600))
            raw = draw(st.binary(min_size=size, max_size=size)) if size < 4096 else bytes(size)
        request.inputs.add(name=name, datatype=datatype, shape=shape)
        if wellformed or draw(st.integers(0, 9)):  # occasionally no contents at all
            request.raw_input_contents.append(raw)
    if wellformed:
        return request
    for key in draw(st.lists(st.sampled_from(["score_threshold", "max_detections", "timeout", "priority", "x"]),
                             max_size=3)):
        param = request.parameters[key]
        kind = draw(st.sampled_from(["double_param", "int64_param", "string_param", "bool_param"]))
        value = {"double_param": draw(st.floats(allow_nan=True)), "int64_param": draw(st.integers(-2**63, 2**63 - 1)),
                 "string_param": "a", "bool_param": True}[kind]
        setattr(param, kind, value)
    return request


def _admit(request: service_pb2.ModelInferRequest) -> None:
    try:
        inputs = parse_infer_request(request)
        cost = request_cost(inputs, PREPROCESS, LIMITS)
        assert 0 < cost
        for i in range(inputs.count):
            image = inputs.load_image(i, max_pixels=LIMITS.max_pixels)
            assert image.dtype == np.uint8 and image.shape[2] == 3
            assert image.shape[0] * image.shape[1] <= LIMITS.max_pixels
    except RequestError as exc:
        assert isinstance(exc.code, grpc.StatusCode) and str(exc)


@FUZZ
@given(requests())
def test_fuzz_structured_requests(request):
    _admit(request)


@FUZZ
@given(st.binary(max_size=256))
def test_fuzz_request_bytes(data):
    try:
        request = service_pb2.ModelInferRequest.FromString(data)
    except DecodeError:
        return
    _admit(request)
