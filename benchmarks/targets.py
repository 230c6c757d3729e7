"""The suite's export rows: (backend, precision) pairs, their names and the defaults.

    parse_targets("onnxruntime:int8,openvino:bf16 aoti")
    -> [ExportTarget("onnxruntime", "int8"), ExportTarget("openvino", "bf16"), ExportTarget("aoti", "fp32")]

An item is ``backend[:precision]`` (precision default ``fp32``); items are separated by
commas or spaces, so ``--backends onnxruntime,aoti`` and ``--backends onnxruntime:int8
openvino:bf16`` both work. Whether a pair can run on this machine is
``sdk.benchmarks.exporting.unavailable_reason``'s question, not a parse error: a
missing backend shows as a skipped row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from sdk.errors import ConfigError
from sdk.precision import PRECISIONS

EXPORT_BACKENDS = ("onnxruntime", "openvino", "aoti", "tensorrt")


@dataclass(frozen=True)
class ExportTarget:
    """One export row of the suite.

    Attributes:
        backend: one of ``EXPORT_BACKENDS``.
        precision: one of ``PRECISIONS`` (baked into the exported graph).
    """

    backend: str
    precision: str = "fp32"

    @property
    def name(self) -> str:
        """Row label, e.g. ``"openvino bf16"``."""
        return f"{self.backend} {self.precision}"

    @property
    def folder(self) -> str:
        """model_dir folder under ``OUT/models``, e.g. ``"openvino_bf16"``."""
        return f"{self.backend}_{self.precision}"

    @property
    def item(self) -> str:
        """The ``--backends`` item that selects this row, e.g. ``"openvino:bf16"``."""
        return f"{self.backend}:{self.precision}"


# fp16 on a CPU without AMX-FP16 runs at a fraction of bf16 (OpenVINO) or through casts
# to fp32 (ONNX Runtime), so the fp16 rows are available but not run by default.
CPU_TARGETS = (
    ExportTarget("onnxruntime", "fp32"), ExportTarget("onnxruntime", "int8"),
    ExportTarget("openvino", "fp32"), ExportTarget("openvino", "bf16"), ExportTarget("openvino", "int8"),
    ExportTarget("aoti", "fp32"),
)
CUDA_TARGETS = (
    ExportTarget("onnxruntime", "fp32"), ExportTarget("tensorrt", "fp32"), ExportTarget("tensorrt", "fp16"),
    ExportTarget("tensorrt", "int8"), ExportTarget("aoti", "fp32"),
)


def default_targets(device: str = "cpu") -> tuple[ExportTarget, ...]:
    """The rows a suite runs when ``--backends`` is not given."""
    return CUDA_TARGETS if str(device).startswith("cuda") else CPU_TARGETS


def parse_target(item: str) -> ExportTarget:
    """``"backend[:precision]"`` -> ``ExportTarget``; ``ConfigError`` naming the bad part."""
    backend, sep, precision = item.strip().lower().partition(":")
    if backend not in EXPORT_BACKENDS:
        raise ConfigError(
            f"--backends item {item!r}: unknown backend {backend!r}; use backend[:precision] with backend one of "
            f"{', '.join(EXPORT_BACKENDS)}"
        )
    if sep and precision not in PRECISIONS:
        raise ConfigError(
            f"--backends item {item!r}: unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}"
        )
    return ExportTarget(backend, precision or "fp32")


def parse_targets(items: str | Iterable[str | ExportTarget | tuple[str, str]]) -> list[ExportTarget]:
    """Comma- or space-separated ``backend[:precision]`` items (a string or a list of
    them; ``ExportTarget`` and ``(backend, precision)`` pass through) -> unique targets
    in the given order. An empty selection is a ``ConfigError``."""
    if isinstance(items, str):
        items = [items]
    targets: list[ExportTarget] = []
    for entry in items:
        if isinstance(entry, ExportTarget):
            parsed: Sequence[ExportTarget] = [entry]
        elif isinstance(entry, tuple):
            parsed = [parse_target(":".join(entry))]
        else:
            parsed = [parse_target(p) for p in entry.replace(",", " ").split()]
        for target in parsed:
            if target not in targets:
                targets.append(target)
    if not targets:
        raise ConfigError("--backends is empty; give backend[:precision] items, e.g. onnxruntime:int8 openvino:bf16")
    return targets
