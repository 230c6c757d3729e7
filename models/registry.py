"""The one model-name registry: name -> builder, family and default preprocessing.

A builder is a function with keyword-only, typed parameters, one of which is
``num_classes``; every other parameter is an override a config or checkpoint may set
(``build_model("fcos_tiny", num_classes=5, score_thresh=0.3)``). Unknown names,
unknown overrides and overrides of the wrong type raise ``ConfigError`` listing what
is valid, so a typo in a config never silently falls back to a default.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from sdk.errors import ConfigError
from sdk.postprocess_record import Postprocess
from sdk.preprocess import Preprocess
from sdk.typecheck import fits, type_name

FAMILIES = ("retinanet", "fcos", "faster_rcnn", "mask_rcnn", "ssdlite", "rtmdet")

# The builder parameters behind the checkpoint's ``postprocess`` record
# ({"score_thr", "iou_thr", "max_det"}), per family, in torchvision's names.
_POSTPROCESS_KNOBS: dict[str, tuple[str, str, str]] = {
    "retinanet": ("score_thresh", "nms_thresh", "detections_per_img"),
    "fcos": ("score_thresh", "nms_thresh", "detections_per_img"),
    "ssdlite": ("score_thresh", "nms_thresh", "detections_per_img"),
    "rtmdet": ("score_thresh", "nms_thresh", "detections_per_img"),
    "faster_rcnn": ("box_score_thresh", "box_nms_thresh", "box_detections_per_img"),
    "mask_rcnn": ("box_score_thresh", "box_nms_thresh", "box_detections_per_img"),
}
_POSTPROCESS_KEYS = Postprocess.KEYS  # the knobs below are in this order


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    Attributes:
        name: registry name (``build_model(name, ...)``).
        family: ``"retinanet"``, ``"fcos"``, ``"faster_rcnn"``, ``"mask_rcnn"``,
            ``"ssdlite"`` or ``"rtmdet"``.
        builder: keyword-only function ``(*, num_classes, **overrides) -> nn.Module``.
        default_preprocess: how images enter this model unless a config says otherwise.
        torchvision_name: the torchvision builder whose state_dict this model loads
            unchanged, or ``None`` (tiny variants).
        pretrained_overrides: overrides that make the model equal to what the torchvision
            builder returns when it loads its published weights (frozen BatchNorm, the
            ``eps=0`` quirk of the v1 R50 weights, trainable layers); ``sdk convert``
            applies them.
    """

    name: str
    family: str
    builder: Callable[..., Any]
    default_preprocess: Preprocess
    torchvision_name: str | None = None
    pretrained_overrides: Mapping[str, Any] = field(default_factory=dict)

    def override_names(self) -> list[str]:
        """Names ``build_model`` accepts as overrides (all but ``num_classes``)."""
        return [p for p in inspect.signature(self.builder).parameters if p != "num_classes"]

    def default_overrides(self) -> dict[str, Any]:
        """Every override with its default value."""
        params = inspect.signature(self.builder).parameters
        return {name: params[name].default for name in self.override_names()}

    def default_postprocess(self) -> dict[str, Any]:
        """The builder's defaults as a ``{"score_thr", "iou_thr", "max_det"}`` record."""
        defaults = self.default_overrides()
        knobs = _POSTPROCESS_KNOBS[self.family]
        return {key: defaults[knob] for key, knob in zip(_POSTPROCESS_KEYS, knobs)}

    def postprocess_record(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``{"score_thr", "iou_thr", "max_det"}`` record of this model built with
        ``overrides`` (the builder's defaults where ``overrides`` do not set a knob)."""
        record = self.default_postprocess()
        for key, knob in zip(_POSTPROCESS_KEYS, _POSTPROCESS_KNOBS[self.family]):
            if overrides and knob in overrides:
                record[key] = overrides[knob]
        return record

    def postprocess_overrides(self, postprocess: Mapping[str, Any]) -> dict[str, Any]:
        """Builder overrides that apply a ``{"score_thr", "iou_thr", "max_det"}`` record."""
        unknown = set(postprocess) - set(_POSTPROCESS_KEYS)
        if unknown:
            raise ConfigError(f"unknown postprocess keys {sorted(unknown)}; known: {list(_POSTPROCESS_KEYS)}")
        knobs = dict(zip(_POSTPROCESS_KEYS, _POSTPROCESS_KNOBS[self.family]))
        return {knobs[key]: value for key, value in postprocess.items()}


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(
    name: str,
    *,
    family: str,
    default_preprocess: Preprocess,
    torchvision_name: str | None = None,
    pretrained_overrides: Mapping[str, Any] | None = None,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator adding a builder to the registry under ``name`` (duplicates are refused)."""

    def decorate(builder: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} is already registered (by {_REGISTRY[name].builder.__module__})")
        if family not in FAMILIES:
            raise ValueError(f"unknown family {family!r}; known: {FAMILIES}")
        params = inspect.signature(builder).parameters
        positional = [p.name for p in params.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
        if positional or "num_classes" not in params:
            raise ValueError(f"builder {builder.__name__} must take keyword-only parameters including num_classes")
        no_default = [p.name for p in params.values() if p.name != "num_classes" and p.default is p.empty]
        if no_default:
            raise ValueError(f"builder {builder.__name__}: overrides {no_default} need default values")
        spec = ModelSpec(
            name=name,
            family=family,
            builder=builder,
            default_preprocess=default_preprocess,
            torchvision_name=torchvision_name,
            pretrained_overrides=types.MappingProxyType(dict(pretrained_overrides or {})),
        )
        unknown = set(spec.pretrained_overrides) - set(spec.override_names())
        if unknown:
            raise ValueError(f"pretrained_overrides of {name!r} name unknown parameters {sorted(unknown)}")
        _REGISTRY[name] = spec
        return builder

    return decorate


def list_models() -> list[str]:
    """All registered model names, sorted."""
    return sorted(_REGISTRY)


def get_model_spec(name: str) -> ModelSpec:
    """The ``ModelSpec`` registered as ``name``; ``ConfigError`` listing the names if none."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; available models: {', '.join(list_models())}") from None


def build_model(name: str, *, num_classes: int, **overrides: Any):
    """Build model ``name`` with ``num_classes`` outputs (background included).

    ``overrides`` are the builder's keyword parameters (torchvision's names, e.g.
    ``score_thresh``, ``box_nms_thresh``, ``rpn_post_nms_top_n_test``). Unknown keys and
    values of the wrong type raise ``ConfigError``.
    """
    spec = get_model_spec(name)
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an int >= 2 (background included), got {num_classes!r}")
    valid = spec.override_names()
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ConfigError(f"unknown override(s) {unknown} for model {name!r}; valid overrides: {', '.join(valid)}")
    hints = typing.get_type_hints(spec.builder)
    for key, value in overrides.items():
        if key in hints and not fits(value, hints[key]):  # sdk.typecheck: the configs' and manifests' checker
            raise ConfigError(f"override {key}={value!r} for model {name!r} must be of type {type_name(hints[key])}")
    return spec.builder(num_classes=num_classes, **overrides)
