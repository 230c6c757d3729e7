"""``Postprocess``: the thresholds a deployed graph's NMS applies, one frozen record.

Stored as ``{"score_thr", "iou_thr", "max_det"}`` in checkpoints (``meta.postprocess``)
and manifests (``postprocess``), baked into every DeployModule at export. This module
is the one definition of its keys and the one validation; the containers that carry
it (``CheckpointMeta``, ``Manifest``) keep the plain-dict form for their JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping

from sdk.errors import ConfigError


@dataclass(frozen=True)
class Postprocess:
    """``score_thr`` (float in [0, 1]): detections scoring lower are dropped before NMS;
    ``iou_thr`` (float in [0, 1]): NMS overlap per class; ``max_det`` (int >= 1): K, the
    rows of the fixed-shape outputs (``boxes`` [B, K, 4], ...)."""

    score_thr: float
    iou_thr: float
    max_det: int

    KEYS: ClassVar[tuple[str, ...]] = ("score_thr", "iou_thr", "max_det")

    def __post_init__(self) -> None:
        for name in ("score_thr", "iou_thr"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"postprocess {name} must be a number, got {value!r}")
            object.__setattr__(self, name, float(value))
        if isinstance(self.max_det, bool) or not isinstance(self.max_det, int) or self.max_det < 1:
            raise ConfigError(f"postprocess max_det must be an int >= 1, got {self.max_det!r}")
        if not 0 <= self.score_thr <= 1 or not 0 <= self.iou_thr <= 1:  # also refuses NaN
            raise ConfigError(f"postprocess needs 0 <= score_thr <= 1 and 0 <= iou_thr <= 1, got {self.to_dict()}")

    @classmethod
    def from_dict(cls, record: Mapping[str, Any], *, what: str = "postprocess") -> "Postprocess":
        """Validate a ``{"score_thr", "iou_thr", "max_det"}`` mapping (exactly those keys);
        ``what`` names the record in the error (e.g. ``"checkpoint postprocess"``)."""
        if not isinstance(record, Mapping) or set(record) != set(cls.KEYS):
            got = sorted(record) if isinstance(record, Mapping) else type(record).__name__
            raise ConfigError(f"{what} needs exactly the keys {list(cls.KEYS)}, got {got}")
        try:
            return cls(**{key: record[key] for key in cls.KEYS})
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)
