"""Protobuf messages as the JSON Triton's HTTP endpoints answer.

``google.protobuf.json_format`` writes 64-bit integers as strings (``"dims":
["3"]``); Triton's REST API, and so ``tritonclient.http``'s users, see numbers.
This walker keeps field names as declared, numbers as numbers, enums by name,
maps as objects, and omits unset fields as proto3 does.
"""

from __future__ import annotations

import base64
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def proto_to_json(message: Message) -> dict[str, Any]:
    """``message`` as a JSON-ready dict."""
    return {field.name: _field(field, value) for field, value in message.ListFields()}


def _field(field: FieldDescriptor, value: Any) -> Any:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value_field = field.message_type.fields_by_name["value"]
        return {key: _scalar(value_field, item) for key, item in value.items()}
    if field.is_repeated:
        return [_scalar(field, item) for item in value]
    return _scalar(field, value)


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return proto_to_json(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        entry = field.enum_type.values_by_number.get(value)
        return entry.name if entry is not None else value
    if field.type == FieldDescriptor.TYPE_BYTES:
        return base64.b64encode(value).decode("ascii")
    return value
