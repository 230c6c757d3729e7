"""KServe v2 tensors <-> numpy for the detection service.

The served model has one input and the four contract outputs (docs/architecture.md,
contract 2), with boxes mapped back to **original image pixels**:

=========== ======== ============== ==============================================
name        datatype shape          meaning
=========== ======== ============== ==============================================
``images``  BYTES    [N, 1] or [N]  encoded images (JPEG, PNG, ...), any sizes
``images``  UINT8    [N, H, W, 3]   RGB pixels, one size for the whole request
``num_dets`` INT32   [N, 1]         valid rows per image
``boxes``   FP32     [N, K, 4]      x1, y1, x2, y2 in original image pixels
``scores``  FP32     [N, K]         descending per image
``labels``  INT32    [N, K]         0-based index into the model's class list
=========== ======== ============== ==============================================

K is the model's ``max_det``; rows past ``num_dets`` are zero. An instance
segmentation model (manifest task ``instance_segmentation``) also has the optional
output ``masks`` BYTES [N, K], sent only when requested: per detection the JSON of its
COCO compressed RLE in original image pixels, ``{"size": [H, W], "counts": "..."}``
(``b""`` on padding rows); ``sdk.masks.decode_rle`` (pycocotools) turns it back into
the bool (H, W) mask ``Detector`` returns. RLE, not the M x M probabilities: it is the
pasted, thresholded mask itself (a client needs neither the unclipped paste box nor
the paste code to get ``Detector``'s pixels) and a few hundred bytes per object
instead of M * M * 4 = 3 KB, the format COCO results and mmdeploy's SDK use. Request parameters:
``score_threshold`` (float, default 0: keep what the model returns),
``max_detections`` (int, caps ``num_dets``), and Triton's ``timeout`` (microseconds
the request may wait in the queue) and ``priority`` (accepted, ignored).

Every malformed request raises ``RequestError`` with the gRPC status to answer.
Tensors travel in ``raw_input_contents`` / ``raw_output_contents`` (what
tritonclient sends and what its ``InferResult.as_numpy`` reads); the typed
``contents`` fields are accepted on input too.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Sequence

import grpc
import numpy as np
from tritonclient.grpc import service_pb2
from tritonclient.utils import deserialize_bytes_tensor

from sdk.detections import Detections
from sdk.errors import InputError, SDKError
from sdk.images import decode_bytes, image_size
from sdk.limits import DEFAULT_MAX_PIXELS
from sdk.postprocess import pack_detections

INPUT_NAME = "images"
#: (name, KServe datatype, numpy dtype, per-image dims with K = -1)
OUTPUTS = (
    ("num_dets", "INT32", np.int32, (1,)),
    ("boxes", "FP32", np.float32, (-1, 4)),
    ("scores", "FP32", np.float32, (-1,)),
    ("labels", "INT32", np.int32, (-1,)),
)
OUTPUT_NAMES = tuple(name for name, *_ in OUTPUTS)
#: the optional output of instance segmentation models (see the module docstring)
MASKS_OUTPUT = ("masks", "BYTES", np.object_, (-1,))
DATATYPES = {name: datatype for name, datatype, *_ in (*OUTPUTS, MASKS_OUTPUT)}
_IGNORED_PARAMETERS = ("priority",)  # Triton's; single-priority queue here


class RequestError(SDKError):
    """A request the server refuses; ``code`` is the gRPC status to answer with."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code


def invalid(message: str) -> RequestError:
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, message)


@dataclass(frozen=True)
class InferInputs:
    """A validated inference request, not yet decoded.

    ``encoded`` holds one encoded image per element (BYTES input); ``pixels`` a
    uint8 [N, H, W, 3] RGB array (UINT8 input). Exactly one of them is set.
    """

    count: int
    encoded: tuple[bytes, ...] | None
    pixels: np.ndarray | None
    score_threshold: float
    max_detections: int | None
    timeout_s: float | None
    outputs: tuple[str, ...]

    def load_images(self, max_pixels: int = DEFAULT_MAX_PIXELS) -> list[np.ndarray]:
        """Decode into (H, W, 3) uint8 RGB images; undecodable bytes -> INVALID_ARGUMENT."""
        return [self.load_image(i, max_pixels=max_pixels) for i in range(self.count)]

    def load_image(self, index: int, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
        """Image ``index`` as (H, W, 3) uint8 RGB; undecodable or over ``max_pixels`` -> INVALID_ARGUMENT."""
        if self.pixels is not None:
            return self.pixels[index]
        try:
            return decode_bytes(self.encoded[index], source=f"image {index} of {self.count}", max_pixels=max_pixels)
        except InputError as exc:
            raise invalid(f"input '{INPUT_NAME}': {exc}") from None

    def image_sizes(self) -> list[tuple[int, int] | None]:
        """(height, width) of every image, from the UINT8 shape or the encoded headers
        (nothing is decoded); ``None`` where PIL refuses the header as a decompression
        bomb (size unknown); unreadable header -> INVALID_ARGUMENT."""
        if self.pixels is not None:
            return [tuple(self.pixels.shape[1:3])] * self.count
        sizes = []
        for i, data in enumerate(self.encoded or ()):
            source = f"image {i} of {self.count}"
            try:
                if not data:
                    raise InputError(f"{source}: empty image data")
                size = image_size(data, source=source)
            except InputError as exc:
                raise invalid(f"input '{INPUT_NAME}': {exc}") from None
            sizes.append(size)
        return sizes


def parse_infer_request(request: service_pb2.ModelInferRequest) -> InferInputs:
    """Validate ``request`` against the service's signature (see the module docstring)."""
    if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
        got = [t.name for t in request.inputs] or "no inputs"
        raise invalid(f"this model takes exactly one input named '{INPUT_NAME}'; got {got}")
    tensor = request.inputs[0]
    raw = _raw_content(request)
    shape = tuple(int(d) for d in tensor.shape)
    if not shape or shape[0] < 1:
        raise invalid(f"input '{INPUT_NAME}' has shape {list(shape)}: send at least one image (shape [N, ...], N >= 1)")
    if tensor.datatype == "BYTES":
        encoded = _parse_bytes(shape, raw, tensor)
        pixels = None
    elif tensor.datatype == "UINT8":
        encoded, pixels = None, _parse_pixels(shape, raw, tensor)
    else:
        raise invalid(
            f"input '{INPUT_NAME}' has datatype {tensor.datatype or '(none)'}; send BYTES "
            "(encoded JPEG/PNG, shape [N, 1]) or UINT8 (RGB pixels, shape [N, H, W, 3])"
        )
    score_thr, max_det, timeout_s = _parse_parameters(request)
    outputs = tuple(o.name for o in request.outputs) or OUTPUT_NAMES
    unknown = [name for name in outputs if name not in DATATYPES]
    if unknown:
        raise invalid(f"unknown requested output(s) {unknown}; this model has {list(OUTPUT_NAMES)} "
                      "(and 'masks' for instance segmentation models)")
    return InferInputs(shape[0], encoded, pixels, score_thr, max_det, timeout_s, outputs)


def _raw_content(request: service_pb2.ModelInferRequest) -> bytes | None:
    if len(request.raw_input_contents) > 1:
        raise invalid(f"{len(request.raw_input_contents)} raw_input_contents for one input")
    if request.raw_input_contents:
        return request.raw_input_contents[0]
    return None


def _parse_bytes(shape: tuple[int, ...], raw: bytes | None, tensor) -> tuple[bytes, ...]:
    if len(shape) > 2 or (len(shape) == 2 and shape[1] != 1):
        raise invalid(
            f"BYTES input '{INPUT_NAME}' must have shape [N, 1] or [N] (one encoded image per element); got {list(shape)}"
        )
    if raw is not None:
        try:
            elements = tuple(deserialize_bytes_tensor(raw))
        except struct.error:
            raise invalid(
                f"BYTES input '{INPUT_NAME}' is malformed: each element must be a 4-byte little-endian "
                "length followed by that many bytes"
            ) from None
    else:
        elements = tuple(tensor.contents.bytes_contents)
    if len(elements) != shape[0]:
        raise invalid(f"BYTES input '{INPUT_NAME}' declares {shape[0]} element(s) but carries {len(elements)}")
    return elements


def _parse_pixels(shape: tuple[int, ...], raw: bytes | None, tensor) -> np.ndarray:
    if len(shape) != 4 or shape[3] != 3 or min(shape) < 1:
        raise invalid(f"UINT8 input '{INPUT_NAME}' must have shape [N, H, W, 3] (RGB, HWC); got {list(shape)}")
    expected = shape[0] * shape[1] * shape[2] * shape[3]  # Python ints: np.prod overflows int64 silently
    if raw is not None:
        if len(raw) != expected:
            raise invalid(f"UINT8 input '{INPUT_NAME}' of shape {list(shape)} needs {expected} bytes; got {len(raw)}")
        return np.frombuffer(raw, np.uint8).reshape(shape)
    if len(tensor.contents.uint_contents) != expected:
        raise invalid(f"UINT8 input '{INPUT_NAME}' of shape {list(shape)} needs {expected} values; "
                      f"got {len(tensor.contents.uint_contents)}")
    values = np.asarray(tensor.contents.uint_contents, np.uint32)
    if values.size != expected or (values.size and values.max() > 255):
        raise invalid(
            f"UINT8 input '{INPUT_NAME}' of shape {list(shape)} needs {expected} values in 0..255; got {values.size}"
        )
    return values.astype(np.uint8).reshape(shape)


def _parse_parameters(request: service_pb2.ModelInferRequest) -> tuple[float, int | None, float | None]:
    score_thr, max_det, timeout_s = 0.0, None, None
    for key, param in request.parameters.items():
        kind = param.WhichOneof("parameter_choice")
        value = getattr(param, kind) if kind else None
        if key == "score_threshold" and kind in ("double_param", "int64_param", "uint64_param"):
            score_thr = float(value)
            if not 0.0 <= score_thr <= 1.0:
                raise invalid(f"parameter 'score_threshold' must be in [0, 1]; got {score_thr}")
        elif key == "max_detections" and kind in ("int64_param", "uint64_param"):
            if value < 1:
                raise invalid(f"parameter 'max_detections' must be >= 1; got {value}")
            max_det = int(value)
        elif key == "timeout" and kind in ("int64_param", "uint64_param"):
            timeout_s = value / 1e6 if value > 0 else None
        elif key in _IGNORED_PARAMETERS:
            continue
        elif key in ("score_threshold", "max_detections", "timeout"):
            raise invalid(f"parameter '{key}' has the wrong type ({kind}); send a number")
        else:
            raise invalid(
                f"unknown request parameter '{key}'; this model accepts 'score_threshold' (float), "
                "'max_detections' (int), 'timeout' (microseconds) and 'priority'"
            )
    return score_thr, max_det, timeout_s


def detections_to_tensors(dets: Sequence[Detections], k: int, *, masks: bool = False) -> dict[str, np.ndarray]:
    """Pack per-image ``Detections`` (original pixels) into the zero-padded [N, K] outputs;
    ``masks``: also the ``masks`` BYTES [N, K] output (JSON of each mask's COCO RLE)."""
    out = pack_detections([(d.boxes, d.scores, d.labels) for d in dets], max_det=k)
    if masks:
        import json

        from sdk.masks import encode_rle

        out["masks"] = np.full((len(dets), k), b"", dtype=np.object_)
        for i, det in enumerate(dets):
            for j in range(min(len(det), k) if det.masks is not None else 0):
                out["masks"][i, j] = json.dumps(encode_rle(det.masks[j]), separators=(",", ":")).encode()
    return out


def serialize_tensor(array: np.ndarray) -> bytes:
    """Raw contents of an output: its bytes, or for BYTES (object) tensors Triton's
    length-prefixed elements (what ``InferResult.as_numpy`` reads)."""
    if array.dtype == np.object_:
        from tritonclient.utils import serialize_byte_tensor

        return serialize_byte_tensor(array).item()  # a 0-d object array holding the bytes
    return np.ascontiguousarray(array).tobytes()


def select_detections(dets: Sequence[Detections], inputs: InferInputs) -> list[Detections]:
    """Apply the request's ``score_threshold`` and ``max_detections`` (scores are descending)."""
    out = []
    for det in dets:
        if inputs.score_threshold > 0:
            det = det.filter(inputs.score_threshold)
        if inputs.max_detections is not None and len(det) > inputs.max_detections:
            det = det.filter(np.arange(inputs.max_detections))
        out.append(det)
    return out


def build_infer_response(
    request: service_pb2.ModelInferRequest,
    *,
    model_name: str,
    model_version: str,
    tensors: dict[str, np.ndarray],
    outputs: Sequence[str],
) -> service_pb2.ModelInferResponse:
    """A ModelInferResponse carrying ``outputs`` of ``tensors`` as raw contents, in order."""
    response = service_pb2.ModelInferResponse(model_name=model_name, model_version=model_version, id=request.id)
    for name in outputs:
        array = tensors[name]
        response.outputs.add(name=name, datatype=DATATYPES[name], shape=array.shape)
        response.raw_output_contents.append(serialize_tensor(array))
    return response
