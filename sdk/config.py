"""Training configs: small Python files that build typed, frozen dataclasses.

A config file (``configs/*.py``) is plain Python that assigns ``config = Config(...)``::

    from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig

    config = Config(
        model=ModelConfig(name="retinanet_resnet50_fpn"),
        data=DataConfig.coco("data/coco", batch_size=2),
        schedule=ScheduleConfig(lr=0.01, epochs=26, steps=(16, 22)),
        runtime=RuntimeConfig(work_dir="work_dirs/retinanet_resnet50_fpn_coco"),
    )

``load_config(path, ["schedule.lr=0.02", "data.preprocess.size=(256,256)"])`` then
applies ``a.b=c`` overrides with nanoGPT-configurator strictness: an unknown key fails
with the list of valid keys, and every value is parsed and checked against the
annotated type of its field (int, float, bool, str, tuples, lists, Optional, nested
dataclasses such as ``Preprocess``). ``model.overrides`` is the one free-form mapping
(its values are Python literals); ``sdk.models.build_model`` rejects unknown keys.

Relative paths in a config are relative to the current working directory.
"""

from __future__ import annotations

import ast
import dataclasses
import runpy
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

from sdk.errors import ConfigError
from sdk.preprocess import Preprocess
from sdk.typecheck import TypeMismatch, coerce


@dataclass(frozen=True)
class ModelConfig:
    """Which detector to build.

    ``classes`` (without ``"__background__"``) defaults to the training dataset's
    category names; the model gets ``["__background__", *classes]`` (num_classes =
    len(classes) + 1). ``overrides`` are keyword overrides of
    ``sdk.models.build_model`` (``score_thresh``, ``nms_thresh``, ...).
    """

    name: str = "retinanet_tiny"
    classes: tuple[str, ...] | None = None
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DataConfig:
    """Datasets (COCO json + image folder), loader and augmentation.

    ``preprocess`` ``None`` uses the model's default preprocessing record. Training
    augmentation: horizontal flip probability ``hflip``, random rescale by a factor
    in ``scale_jitter`` (lo, hi) before the fixed preprocessing placement, and
    colour jitter when ``photometric``. ``filter_empty`` drops training images
    without boxes. ``batch_size`` is per process (GPU); the total batch is
    ``batch_size * world_size``.
    """

    train_ann: str = "data/coco/annotations/instances_train2017.json"
    train_images: str = "data/coco/images/train2017"
    val_ann: str = "data/coco/annotations/instances_val2017.json"
    val_images: str = "data/coco/images/val2017"
    batch_size: int = 2
    val_batch_size: int = 4
    workers: int = 2
    preprocess: Preprocess | None = None
    hflip: float = 0.5
    scale_jitter: tuple[float, float] | None = None
    photometric: bool = False
    filter_empty: bool = True

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.val_batch_size < 1:
            raise ConfigError("data.batch_size and data.val_batch_size must be >= 1")
        if self.workers < 0:
            raise ConfigError(f"data.workers must be >= 0, got {self.workers}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ConfigError(f"data.hflip is a probability in [0, 1], got {self.hflip}")
        if self.scale_jitter is not None and not 0 < self.scale_jitter[0] <= self.scale_jitter[1]:
            raise ConfigError(f"data.scale_jitter must be (lo, hi) with 0 < lo <= hi, got {self.scale_jitter}")

    @classmethod
    def coco(cls, root: str = "data/coco", **kwargs: Any) -> "DataConfig":
        """COCO 2017 laid out as ``root/annotations/instances_{split}2017.json`` and
        ``root/images/{split}2017/``."""
        return cls(
            train_ann=f"{root}/annotations/instances_train2017.json",
            train_images=f"{root}/images/train2017",
            val_ann=f"{root}/annotations/instances_val2017.json",
            val_images=f"{root}/images/val2017",
            **kwargs,
        )


@dataclass(frozen=True)
class ScheduleConfig:
    """Optimizer and learning-rate schedule.

    The learning rate warms up linearly from ``lr * warmup_factor`` over
    ``warmup_iters`` iterations, then follows ``lr_schedule``: ``"step"`` multiplies by
    ``gamma`` at each epoch in ``steps``; ``"cosine"`` decays (per iteration) to
    ``lr * min_lr_ratio`` at the end; ``"flat_cosine"`` (RTMDet's) keeps ``lr`` for the
    first half of the iterations and decays by cosine over the second. ``lr`` is for a total batch of
    ``base_batch_size`` images; ``sdk train --auto-scale-lr`` scales it linearly to the
    actual total batch. ``grad_clip`` is a max total gradient L2 norm (``None``: off).
    ``amp``: mixed precision (fp16 + GradScaler on CUDA, bf16 on CPU). ``ema``: keep an
    exponential moving average of the weights (decay ``ema_decay``, warmed up as
    ``ema_decay * (1 - exp(-updates / ema_tau))``) and evaluate and deploy it.
    """

    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    norm_weight_decay: float | None = 0.0
    epochs: int = 12
    warmup_iters: int = 500
    warmup_factor: float = 0.001
    lr_schedule: str = "step"
    steps: tuple[int, ...] = (8, 11)
    gamma: float = 0.1
    min_lr_ratio: float = 0.01
    grad_clip: float | None = None
    base_batch_size: int = 16
    amp: bool = False
    ema: bool = False
    ema_decay: float = 0.9998
    ema_tau: float = 2000.0

    def __post_init__(self) -> None:
        if self.optimizer not in ("sgd", "adamw"):
            raise ConfigError(f"schedule.optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if self.lr_schedule not in ("step", "cosine", "flat_cosine"):
            raise ConfigError(
                f"schedule.lr_schedule must be 'step', 'cosine' or 'flat_cosine', got {self.lr_schedule!r}"
            )
        if self.lr <= 0 or self.epochs < 1 or self.base_batch_size < 1 or self.warmup_iters < 0:
            raise ConfigError("schedule needs lr > 0, epochs >= 1, base_batch_size >= 1, warmup_iters >= 0")
        if list(self.steps) != sorted(self.steps):
            raise ConfigError(f"schedule.steps must be increasing epochs, got {self.steps}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"schedule.grad_clip must be > 0 or None, got {self.grad_clip}")
        if not 0.0 < self.ema_decay < 1.0 or self.ema_tau <= 0:
            raise ConfigError(f"schedule.ema_decay must be in (0, 1) and ema_tau > 0, got {self.ema_decay}, {self.ema_tau}")


@dataclass(frozen=True)
class RuntimeConfig:
    """Where and how a run executes.

    ``device`` ``"auto"`` picks CUDA when available. ``val_interval`` validates every
    N epochs (and always after the last). ``log_interval`` is in iterations.
    ``num_threads`` ``None`` uses every CPU core (split between local processes).
    ``work_dir`` ``None``: ``sdk train`` uses ``work_dirs/<config file name>``.
    """

    seed: int = 0
    device: str = "auto"
    val_interval: int = 1
    log_interval: int = 20
    work_dir: str | None = None
    num_threads: int | None = None

    def __post_init__(self) -> None:
        if self.val_interval < 1 or self.log_interval < 1:
            raise ConfigError("runtime.val_interval and runtime.log_interval must be >= 1")


@dataclass(frozen=True)
class Config:
    """A whole training/evaluation run."""

    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready nested dict (tuples become lists)."""
        return _to_jsonable(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Config":
        """Inverse of ``to_dict``; unknown keys and wrong types raise ``ConfigError``."""
        return _from_mapping(cls, data, prefix="")


# -- loading ---------------------------------------------------------------------


def load_config(path: str | Path, overrides: Sequence[str] = ()) -> Config:
    """Run the config file at ``path``, take its ``config`` variable and apply
    ``overrides`` (``"a.b=c"`` strings)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (configs live in configs/*.py)")
    try:
        namespace = runpy.run_path(str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    except Exception as exc:  # a user's Python file can fail in any way
        raise ConfigError(f"{path} failed to run: {type(exc).__name__}: {exc}") from exc
    config = namespace.get("config")
    if not isinstance(config, Config):
        raise ConfigError(f"{path} must assign `config = Config(...)` (from sdk.config); found {type(config).__name__}")
    return apply_overrides(config, overrides)


def apply_overrides(config: Any, overrides: Sequence[str]) -> Any:
    """A copy of the dataclass ``config`` with each ``"a.b=c"`` override applied."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form key=value (e.g. schedule.lr=0.02)")
        config = _set_path(config, key.strip().split("."), raw.strip(), full_key=key.strip())
    return config


def _set_path(obj: Any, parts: list[str], raw: str, *, full_key: str) -> Any:
    if isinstance(obj, Mapping):  # free-form mapping (model.overrides): literal values
        if len(parts) != 1:
            raise ConfigError(f"{full_key}: {'.'.join(parts)} goes deeper than the mapping allows")
        return {**obj, parts[0]: _parse_literal(raw)}
    if not is_dataclass(obj):
        raise ConfigError(f"{full_key}: cannot set a sub-key of a {type(obj).__name__} value")
    hints = _field_types(type(obj))
    name = parts[0]
    if name not in hints:
        raise ConfigError(f"unknown config key {full_key!r}: {type(obj).__name__} has {sorted(hints)}")
    current = getattr(obj, name)
    if len(parts) > 1:
        if current is None:  # e.g. data.preprocess.size when preprocess is None
            base = _dataclass_in(hints[name])
            if base is None:
                raise ConfigError(f"{full_key}: {name} is None and has no sub-keys")
            current = base()
        value = _set_path(current, parts[1:], raw, full_key=full_key)
    else:
        value = parse_value(raw, hints[name], key=full_key)
    try:
        return replace(obj, **{name: value})
    except ConfigError as exc:
        raise ConfigError(f"{full_key}={raw}: {exc}") from exc


# -- typed parsing ---------------------------------------------------------------


def parse_value(raw: str, annotation: Any, *, key: str) -> Any:
    """Parse the command-line text ``raw`` as a value of type ``annotation``.

    Values are Python literals (``0.02``, ``(256, 256)``, ``[8, 11]``, ``True``) or
    bare words (strings), ``8,11`` for a tuple, ``None``/``null`` for Optional.
    Raises ``ConfigError`` naming ``key`` when the value does not fit the type.
    """
    return _convert(_parse_literal(raw), annotation, key=key, raw=raw, from_text=True)


def _parse_literal(raw: str) -> Any:
    text = raw.strip()
    if text.lower() in ("none", "null"):
        return None
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        if text[:1] + text[-1:] in ("[]", "()"):  # bracketed bare words: classes=[cat, dog]
            text = text[1:-1]
            return tuple(_parse_literal(part) for part in text.split(",")) if text.strip() else ()
        if "," in text:  # bare comma lists: steps=8,11
            return tuple(_parse_literal(part) for part in text.split(","))
        return text  # a bare word is a string


def _convert(value: Any, annotation: Any, *, key: str, raw: Any, from_text: bool = False) -> Any:
    """``value`` checked (and where lossless, converted) to ``annotation`` by
    ``sdk.typecheck.coerce``; a mismatch is a ``ConfigError`` naming ``key``.

    ``from_text``: the value came from command-line text (a number given for a ``str``
    field is the text it was written as; one value for a tuple is a 1-tuple).
    """
    def nested(cls: type, data: Mapping[str, Any]) -> Any:
        return _from_mapping(cls, data, prefix=f"{key}.")

    try:
        return coerce(value, annotation, from_text=from_text, nested=nested)
    except TypeMismatch as exc:
        raise ConfigError(f"{key}: {exc}, got {raw!r}") from None


def _from_mapping(cls: type, data: Mapping[str, Any], *, prefix: str) -> Any:
    hints = _field_types(cls)
    unknown = sorted(set(data) - set(hints))
    if unknown:
        raise ConfigError(f"unknown config keys {[prefix + k for k in unknown]}: {cls.__name__} has {sorted(hints)}")
    kwargs = {k: _convert(v, hints[k], key=prefix + k, raw=v) for k, v in data.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix.rstrip('.') or cls.__name__}: {exc}") from exc


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in fields(cls)}


def _dataclass_in(annotation: Any) -> type | None:
    if is_dataclass(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        if is_dataclass(arg):
            return arg
    return None


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_to_jsonable(v) for v in value]
    return value
