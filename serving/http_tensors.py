"""KServe v2 REST bodies <-> the gRPC ``ModelInferRequest`` the serving core takes.

A REST inference body is a JSON object, optionally followed by raw tensors
(Triton's binary-data extension): the ``Inference-Header-Content-Length`` header
gives the JSON's length, and each input whose ``parameters.binary_data_size`` is
set takes that many bytes, in input order. Translating into the protobuf request
means every check of ``sdk.serving.protocol`` (and the limits applied there)
holds for both protocols alike.

Outputs go back as JSON ``data`` or, when asked (``parameters.binary_data`` per
output, or the request's ``binary_data_output``, what ``tritonclient.http`` sends
by default), as raw bytes after the JSON with ``binary_data_size`` set.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import grpc
import numpy as np
from tritonclient.grpc import service_pb2

from sdk.serving.protocol import DATATYPES, RequestError, invalid, serialize_tensor

#: the JSON part of a request is parsed into Python objects: bound it well below the body limit
MAX_JSON_BYTES = 16 * 1024 * 1024
_DATATYPES = DATATYPES


@dataclass(frozen=True)
class RestInferRequest:
    """A parsed REST request: the protobuf request and how each output is to be sent."""

    request: service_pb2.ModelInferRequest
    binary_outputs: Mapping[str, bool]  # output name -> send raw
    binary_default: bool  # for outputs not listed


def parse_rest_request(
    body: bytes, header_length: str | None, *, model_name: str, model_version: str
) -> RestInferRequest:
    """Split ``body`` (JSON header + binary tensors) and build the protobuf request."""
    json_part, binary = _split(body, header_length)
    if len(json_part) > MAX_JSON_BYTES:
        raise RequestError(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            f"JSON part of {len(json_part)} bytes exceeds {MAX_JSON_BYTES}; send tensors as binary data "
            "(Inference-Header-Content-Length)",
        )
    try:
        doc = json.loads(json_part)
    except (UnicodeDecodeError, ValueError) as exc:
        raise invalid(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid("request body must be a JSON object with 'inputs'")
    request = service_pb2.ModelInferRequest(model_name=model_name, model_version=model_version)
    if "id" in doc:
        request.id = _string(doc["id"], "id")
    params = _object(doc.get("parameters", {}), "parameters")
    binary_default = bool(params.pop("binary_data_output", False))
    _set_parameters(request.parameters, params)
    offset = 0
    for i, item in enumerate(_list(doc.get("inputs"), "inputs")):
        offset = _add_input(request, _object(item, f"inputs[{i}]"), binary, offset)
    if offset != len(binary):
        raise invalid(f"{len(binary) - offset} byte(s) follow the JSON header that no input claims (binary_data_size)")
    binary_outputs = {}
    for i, item in enumerate(_list(doc.get("outputs", []), "outputs")):
        output = _object(item, f"outputs[{i}]")
        name = _string(output.get("name"), f"outputs[{i}].name")
        out_params = _object(output.get("parameters", {}), f"output '{name}' parameters")
        if "classification" in out_params:
            raise invalid("the classification extension is not supported: detections are not class scores")
        binary_outputs[name] = bool(out_params.get("binary_data", binary_default))
        request.outputs.add(name=name)
    return RestInferRequest(request, binary_outputs, binary_default)


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    try:
        n = int(header_length)
    except ValueError:
        n = -1
    if not 0 <= n <= len(body):
        raise invalid(f"Inference-Header-Content-Length {header_length!r} must be an integer in 0..{len(body)} (the body size)")
    return body[:n], body[n:]


def _add_input(request: service_pb2.ModelInferRequest, item: dict, binary: bytes, offset: int) -> int:
    name = _string(item.get("name"), "input name")
    datatype = _string(item.get("datatype"), f"input '{name}' datatype")
    shape = _list(item.get("shape"), f"input '{name}' shape")
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise invalid(f"input '{name}' shape must be a list of non-negative integers; got {shape}")
    try:
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
    except ValueError:
        raise invalid(f"input '{name}' shape {shape} is out of range") from None
    size = _object(item.get("parameters", {}), f"input '{name}' parameters").get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or size < 0 or offset + size > len(binary):
            raise invalid(
                f"input '{name}' declares binary_data_size {size!r}, but {len(binary) - offset} byte(s) "
                "are left after the JSON header"
            )
        request.raw_input_contents.append(binary[offset : offset + size])
        return offset + size
    if "data" not in item:
        raise invalid(f"input '{name}' has neither 'data' nor parameters.binary_data_size")
    _set_json_data(tensor, datatype, item["data"])
    return offset


def _set_json_data(tensor, datatype: str, data: Any) -> None:
    """JSON ``data`` (flat or nested, row-major) into the typed contents protocol.py reads."""
    if datatype == "BYTES":
        flat = _flatten(data)
        if not all(isinstance(x, str) for x in flat):
            raise invalid(f"BYTES input '{tensor.name}' JSON data must be strings (send images as binary data)")
        tensor.contents.bytes_contents.extend(x.encode("utf-8") for x in flat)
    elif datatype == "UINT8":
        try:
            values = np.asarray(data, dtype=np.int64).reshape(-1)
        except (TypeError, ValueError, OverflowError):
            raise invalid(f"UINT8 input '{tensor.name}' JSON data must be integers in 0..255") from None
        if values.size and (values.min() < 0 or values.max() > 255):
            raise invalid(f"UINT8 input '{tensor.name}' JSON data must be integers in 0..255")
        tensor.contents.uint_contents.extend(values.tolist())
    # other datatypes: protocol.py refuses them by datatype, naming the ones it takes


def _flatten(data: Any) -> list:
    if not isinstance(data, list):
        return [data]
    out: list = []
    for item in data:
        out.extend(_flatten(item))
    return out


def _set_parameters(target, params: Mapping[str, Any]) -> None:
    for key, value in params.items():
        try:
            _set_parameter(target, key, value)
        except ValueError:
            raise invalid(f"parameter '{key}' is out of range: {value!r}") from None


def _set_parameter(target, key: str, value: Any) -> None:
    if isinstance(value, bool):
        target[key].bool_param = value
    elif isinstance(value, int):
        target[key].int64_param = value
    elif isinstance(value, float):
        target[key].double_param = value
    elif isinstance(value, str):
        target[key].string_param = value
    else:
        raise invalid(f"parameter '{key}' must be a number, string or boolean; got {type(value).__name__}")


def encode_rest_response(
    *,
    model_name: str,
    model_version: str,
    request_id: str,
    tensors: Mapping[str, np.ndarray],
    outputs: Sequence[str],
    parsed: RestInferRequest,
) -> tuple[bytes, int | None]:
    """The response body and, when raw tensors follow the JSON, the JSON's length."""
    doc: dict[str, Any] = {"model_name": model_name, "model_version": model_version}
    if request_id:
        doc["id"] = request_id
    doc["outputs"] = []
    raw: list[bytes] = []
    for name in outputs:
        array = np.ascontiguousarray(tensors[name])
        entry: dict[str, Any] = {"name": name, "datatype": _DATATYPES[name], "shape": list(array.shape)}
        if parsed.binary_outputs.get(name, parsed.binary_default):
            raw.append(serialize_tensor(array))
            entry["parameters"] = {"binary_data_size": len(raw[-1])}
        elif array.dtype == np.object_:  # BYTES (masks): the JSON strings themselves
            entry["data"] = [bytes(v).decode() for v in array.reshape(-1)]
        else:
            entry["data"] = array.reshape(-1).tolist()
        doc["outputs"].append(entry)
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not raw:
        return header, None
    return b"".join([header, *raw]), len(header)


def _object(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise invalid(f"{what} must be a JSON object")
    return dict(value)


def _list(value: Any, what: str) -> list:
    if not isinstance(value, list):
        raise invalid(f"{what} must be a JSON list")
    return value


def _string(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise invalid(f"{what} must be a string")
    return value
