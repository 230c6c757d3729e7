"""Runtime type checks against annotations: the one mechanism behind configs
(``sdk.config``), model-builder overrides (``sdk.models.registry``) and manifests
(``sdk.manifest``).

``coerce(value, annotation)`` returns ``value`` checked against ``annotation`` and,
where lossless, converted (an int for a ``float``, a list for a ``tuple[...]``, a
mapping for a dataclass through ``nested``); otherwise it raises ``TypeMismatch``,
which each caller turns into its own ``SDKError`` naming the field. Understood:
``Any``, ``None``, unions / ``Optional``, ``Literal``, ``bool``, ``int`` and ``float``
(a bool is neither: JSON ``true`` is not a count), ``str``, ``tuple[T, ...]`` and
fixed ``tuple[A, B]``, ``list[T]``, ``dict[K, V]``, dataclasses and plain classes.
Other annotations (callables, protocols) are accepted unchecked: the code that uses
the value checks it.
"""

from __future__ import annotations

import types
import typing
from dataclasses import is_dataclass
from typing import Any, Callable, Mapping


class TypeMismatch(ValueError):
    """``value`` does not fit the annotation; ``str(exc)`` says how (``expected int``,
    ``needs 2 values (tuple[int, int])``, ``may not be None (expected int)``)."""


def coerce(
    value: Any,
    annotation: Any,
    *,
    from_text: bool = False,
    nested: Callable[[type, Mapping[str, Any]], Any] | None = None,
) -> Any:
    """``value`` checked against ``annotation`` (converted where lossless).

    ``from_text``: the value was parsed from command-line text, so a number given for a
    ``str`` is the text it was written as, and one value for a ``tuple[T, ...]`` is a
    1-tuple. ``nested(cls, mapping)`` builds a dataclass ``cls`` from a mapping (without
    it a mapping for a dataclass is a mismatch).
    """
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(value, arg, from_text=from_text, nested=nested)
            except TypeMismatch:
                continue
        raise TypeMismatch(f"expected {type_name(annotation)}")
    if annotation is type(None) or annotation is None:
        if value is None:
            return None
        raise TypeMismatch("expected None")
    if value is None:
        raise TypeMismatch(f"may not be None (expected {type_name(annotation)})")
    if origin is typing.Literal:
        if value in args:
            return value
        raise TypeMismatch(f"expected one of {list(args)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
    elif annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif annotation is str:
        if isinstance(value, str):
            return value
        if from_text and isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
    elif origin in (tuple, list) or annotation in (tuple, list):
        return _sequence(value, annotation, origin or annotation, args, from_text=from_text, nested=nested)
    elif origin is dict or annotation is dict:
        if isinstance(value, Mapping):
            if not args:
                return dict(value)
            return {coerce(k, args[0], nested=nested): coerce(v, args[1], from_text=from_text, nested=nested)
                    for k, v in value.items()}
    elif is_dataclass(annotation):
        if isinstance(value, annotation):
            return value
        if nested is not None and isinstance(value, Mapping):
            return nested(annotation, value)
    elif isinstance(annotation, type):
        if isinstance(value, annotation):
            return value
    else:
        return value  # an annotation this checker does not model
    raise TypeMismatch(f"expected {type_name(annotation)}")


def fits(value: Any, annotation: Any) -> bool:
    """Whether ``coerce(value, annotation)`` would accept ``value``."""
    try:
        coerce(value, annotation)
    except TypeMismatch:
        return False
    return True


def type_name(annotation: Any) -> str:
    """``int``, ``tuple[int, int]``, ``str | None``: an annotation as a user reads it."""
    if isinstance(annotation, type) and not typing.get_args(annotation):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


def _sequence(value: Any, annotation: Any, origin: type, args: tuple, *, from_text: bool, nested) -> Any:
    if isinstance(value, (tuple, list)):
        items = value
    elif from_text:  # `steps=8` on the command line: a 1-tuple
        items = (value,)
    else:
        raise TypeMismatch(f"expected {type_name(annotation)}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(items) != len(args):
            raise TypeMismatch(f"needs {len(args)} values ({type_name(annotation)})")
        out = [coerce(v, a, from_text=from_text, nested=nested) for v, a in zip(items, args)]
    else:
        elem = args[0] if args else Any
        out = [coerce(v, elem, from_text=from_text, nested=nested) for v in items]
    return tuple(out) if origin is tuple else out
