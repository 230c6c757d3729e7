"""``sdk.typecheck``: the one runtime type check behind configs, model-builder
overrides and manifests (issue 16, item 11)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import pytest

from sdk.typecheck import TypeMismatch, coerce, fits, type_name


@pytest.mark.parametrize("value, annotation, expected", [
    (3, float, 3.0),
    ([1, 2], tuple[int, int], (1, 2)),
    ((1, 2, 3), tuple[int, ...], (1, 2, 3)),
    ([1.5, 2], list[float], [1.5, 2.0]),
    (None, int | None, None),
    (2, int | None, 2),
    ({"a": "b"}, dict[str, str], {"a": "b"}),
    ("nms", Literal["nms", "soft"], "nms"),
    (object, Any, object),
])
def test_accepted_values_come_back_converted(value, annotation, expected):
    out = coerce(value, annotation)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize("value, annotation, message", [
    (True, int, "expected int"),  # JSON true is not a count
    (True, float, "expected float"),
    (1.5, int, "expected int"),
    ("3", int, "expected int"),
    (None, int, "may not be None (expected int)"),
    ([1, 2, 3], tuple[int, int], "needs 2 values (tuple[int, int])"),
    ([1, "x"], list[int], "expected int"),
    ({"a": 1}, dict[str, str], "expected str"),
    ("hard", Literal["nms", "soft"], "expected one of ['nms', 'soft']"),
    (4, str, "expected str"),
    (4, tuple[int, ...], "expected tuple[int, ...]"),
])
def test_mismatches_say_what_was_expected(value, annotation, message):
    with pytest.raises(TypeMismatch) as info:
        coerce(value, annotation)
    assert message in str(info.value)
    assert not fits(value, annotation)


def test_command_line_text_rules():
    assert coerce(8, tuple[int, ...], from_text=True) == (8,)
    assert coerce(1.5, str, from_text=True) == "1.5"


def test_nested_dataclasses_are_built_by_the_caller():
    @dataclass(frozen=True)
    class Inner:
        k: int = 0

    assert coerce({"k": 2}, Inner, nested=lambda cls, data: cls(**data)) == Inner(2)
    with pytest.raises(TypeMismatch):
        coerce({"k": 2}, Inner)
    assert type_name(Inner) == "Inner" and type_name(tuple[int, int]) == "tuple[int, int]"


def test_config_registry_and_manifest_refuse_a_bool_count_alike(tmp_path):
    """The three former hand-written checkers now agree: ``True`` is not an int."""
    from sdk.config import Config
    from sdk.errors import ConfigError, ModelDirError
    from sdk.manifest import _parse_manifest
    from sdk.models.registry import build_model

    with pytest.raises(ConfigError, match=r"schedule.epochs: expected int, got True"):
        Config.from_dict({"schedule": {"epochs": True}})
    with pytest.raises(ConfigError, match="must be of type int"):
        build_model("retinanet_tiny", num_classes=3, detections_per_img=True)
    with pytest.raises(ModelDirError, match="field 'format_version' must be an integer, got bool"):
        _parse_manifest(json.loads('{"format_version": true}'), "manifest.json")
