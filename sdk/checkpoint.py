"""SDK checkpoints: weights plus everything needed to rebuild and run the model.

A checkpoint is one ``torch.save`` file holding only tensors and primitives (so it
loads with ``torch.load(weights_only=True)``, never unpickling code)::

    {"sdk_checkpoint": 1,                  # format_version, marks an SDK checkpoint
     "meta": CheckpointMeta.to_dict(),     # model name, classes, preprocess, postprocess
     "state_dict": {name: tensor},
     "extra": {...} | None}                # trainer state: optimizer, scheduler, epoch

``build_model_from_checkpoint`` rebuilds the registered model with the recorded
overrides and post-processing and loads the weights strictly. torch is imported inside
the functions: importing this module stays cheap.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Callable, Mapping

from sdk.errors import CheckpointError, ConfigError
from sdk.postprocess_record import Postprocess
from sdk.preprocess import Preprocess

if TYPE_CHECKING:  # pragma: no cover
    import torch

FORMAT_VERSION = 1
_MARKER = "sdk_checkpoint"
_CONVERT_HINT = "convert it with `sdk convert torchvision STATE_DICT --model NAME --classes coco --out CKPT.pt`"


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint says about its model.

    Attributes:
        model_name: registry name (``sdk.models.list_models()``).
        num_classes: outputs of the classifier, background included (= ``len(classes)``).
        classes: the names the model's labels index (label i -> ``classes[i]``).
        preprocess: how images enter the network.
        postprocess: ``{"score_thr", "iou_thr", "max_det"}`` deployment thresholds.
        model_overrides: builder overrides the model was built with.
        format_version: checkpoint format (``FORMAT_VERSION``).
    """

    model_name: str
    num_classes: int
    classes: tuple[str, ...]
    preprocess: Preprocess
    postprocess: dict[str, Any]
    model_overrides: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "classes", tuple(self.classes))
        if len(self.classes) != self.num_classes:
            raise CheckpointError(
                f"checkpoint meta lists {len(self.classes)} classes but num_classes={self.num_classes}"
            )
        try:
            record = Postprocess.from_dict(self.postprocess, what="checkpoint postprocess")
        except ConfigError as exc:
            raise CheckpointError(str(exc)) from None
        object.__setattr__(self, "postprocess", record.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain lists/dicts/primitives (JSON- and ``weights_only``-safe)."""
        return {
            "model_name": self.model_name,
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "preprocess": self.preprocess.to_dict(),
            "postprocess": dict(self.postprocess),
            "model_overrides": dict(self.model_overrides),
            "format_version": self.format_version,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "CheckpointMeta":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        required = {f.name for f in fields(cls) if f.name not in ("model_overrides", "format_version")}
        missing = required - set(data)
        if unknown or missing:
            raise CheckpointError(
                f"bad checkpoint meta: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}"
            )
        values = dict(data)
        values["preprocess"] = Preprocess.from_dict(dict(values["preprocess"]))
        return cls(**values)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A loaded checkpoint: ``meta``, ``state_dict`` (name -> tensor) and trainer ``extra``."""

    meta: CheckpointMeta
    state_dict: dict[str, "torch.Tensor"]
    extra: dict[str, Any] | None = None
    path: Path | None = None


def save_checkpoint(
    path: str | Path,
    *,
    meta: CheckpointMeta,
    state_dict: Mapping[str, "torch.Tensor"],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically and return its path.

    The file is written to a temporary file in the same folder, flushed to disk and
    renamed over ``path``, so a crash never leaves a half-written checkpoint. ``extra``
    may hold only tensors, primitives, lists and dicts (``weights_only`` loading).
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {_MARKER: FORMAT_VERSION, "meta": meta.to_dict(), "state_dict": dict(state_dict), "extra": extra}
    return write_atomic(path, lambda handle: torch.save(payload, handle))


def write_atomic(path: str | os.PathLike, write: Callable[[BinaryIO], Any]) -> Path:
    """Run ``write(file)`` on a temporary file beside ``path``, flush it to disk and
    rename it over ``path``: at every moment ``path`` is the old or the new file."""
    path = Path(path)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)
    return path


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: str | Path, *, map_location: Any = "cpu") -> LoadedCheckpoint:
    """Read an SDK checkpoint with ``torch.load(weights_only=True)``.

    Raises ``CheckpointError`` for a missing file, a corrupt or unsafe file, or a file
    that is not an SDK checkpoint (e.g. a bare torchvision state_dict, which the message
    says how to convert).
    """
    path = Path(path)
    payload = _torch_load(path, map_location=map_location)
    if not isinstance(payload, dict) or _MARKER not in payload:
        if isinstance(payload, dict) and (_is_state_dict(payload) or _is_state_dict(payload.get("model"))):
            raise CheckpointError(f"{path} is a plain PyTorch state_dict, not an SDK checkpoint; {_CONVERT_HINT}")
        raise CheckpointError(f"{path} is not an SDK checkpoint (no {_MARKER!r} record); {_CONVERT_HINT}")
    version = payload[_MARKER]
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format {version}; this SDK reads format {FORMAT_VERSION} (upgrade the SDK)"
        )
    state_dict = payload.get("state_dict")
    if not _is_state_dict(state_dict):
        raise CheckpointError(f"{path} is damaged: its state_dict is missing or holds non-tensors")
    return LoadedCheckpoint(
        meta=CheckpointMeta.from_dict(payload.get("meta") or {}),
        state_dict=dict(state_dict),
        extra=payload.get("extra"),
        path=path,
    )


def build_model_from_checkpoint(ckpt_or_path: LoadedCheckpoint | str | Path, *, device: Any = "cpu"):
    """Rebuild the checkpoint's model, load its weights strictly, move it to ``device``.

    The model is built as ``build_model(meta.model_name, num_classes=meta.num_classes,
    **meta.model_overrides)`` with the post-processing knobs set from
    ``meta.postprocess`` (which wins over the same knob in ``model_overrides``).

    Returns:
        ``(model.eval(), meta)``.
    """
    from sdk.models import build_model, get_model_spec

    ckpt = ckpt_or_path if isinstance(ckpt_or_path, LoadedCheckpoint) else load_checkpoint(ckpt_or_path)
    meta = ckpt.meta
    spec = get_model_spec(meta.model_name)
    overrides = {**meta.model_overrides, **spec.postprocess_overrides(meta.postprocess)}
    model = build_model(meta.model_name, num_classes=meta.num_classes, **overrides)
    load_state_dict_strict(model, ckpt.state_dict, source=str(ckpt.path or "checkpoint"))
    return model.to(device).eval(), meta


def load_state_dict_strict(
    model: "torch.nn.Module", state_dict: Mapping[str, "torch.Tensor"], *, source: str, show: int = 5
) -> None:
    """Load ``state_dict`` into ``model`` requiring every key to match (``strict=True``
    semantics), raising ``CheckpointError`` that names the first ``show`` missing,
    unexpected or wrongly shaped keys.

    The modules' own load hooks run first (torchvision renames legacy keys, BatchNorm
    supplies ``num_batches_tracked``), so only real mismatches are reported. On error
    the model may be partly loaded: discard it.
    """
    model_name = type(model).__name__
    try:
        result = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as exc:  # shape mismatches raise even with strict=False
        lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise CheckpointError(f"{source} does not fit {model_name}: {_first(lines, show)}") from None
    problems = [
        f"{label} {_first(keys, show)}"
        for label, keys in (("missing keys", result.missing_keys), ("unexpected keys", result.unexpected_keys))
        if keys
    ]
    if problems:
        raise CheckpointError(f"{source} does not fit {model_name}: {'; '.join(problems)}")


def _first(items: list[str], show: int) -> str:
    more = f" (+{len(items) - show} more)" if len(items) > show else ""
    return ", ".join(items[:show]) + more


def load_state_dict_file(path: str | Path, *, map_location: Any = "cpu") -> dict[str, "torch.Tensor"]:
    """Read a plain PyTorch state_dict file safely (``weights_only=True``).

    Accepts a bare ``{name: tensor}`` mapping (torchvision's published weights), a
    training-script checkpoint with the weights under ``"model"`` or ``"state_dict"``
    (torchvision's reference scripts), or an SDK checkpoint.
    """
    path = Path(path)
    payload = _torch_load(path, map_location=map_location)
    if isinstance(payload, Mapping):
        for candidate in (payload, payload.get("model"), payload.get("state_dict")):
            if _is_state_dict(candidate):
                return dict(candidate)
    raise CheckpointError(
        f"{path} holds no state_dict (expected {{name: tensor}}, or one under a 'model' or 'state_dict' key)"
    )


def _torch_load(path: Path, *, map_location: Any) -> Any:
    import pickle

    import torch

    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path} holds objects other than tensors and primitives, which are not loaded for safety "
            f"(weights_only): {str(exc).splitlines()[0]}"
        ) from None
    except Exception as exc:  # torch.load of arbitrary bytes fails in many ways
        detail = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise CheckpointError(f"{path} is not a readable PyTorch file (truncated or corrupt?): {detail}") from None


def _is_state_dict(value: Any) -> bool:
    import torch

    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items()
    )
