"""Numeric precisions of exported graphs and their default accuracy gates.

Torch-free: the manifest, the runtimes and the CLI all read these. A precision is a
property of the exported graph (docs/architecture.md, section 3b):

| precision | what the graph computes | default gate (bbox mAP drop vs eager) |
|---|---|---|
| ``fp32`` | everything float32 | 0.002 |
| ``fp16`` | the network (backbone, neck, heads) in float16; input normalization, box decoding, thresholds and the custom ops in float32 (explicit casts) | 0.005 |
| ``bf16`` | the network's convolutions and matmuls in bfloat16, the rest float32 | 0.005 |
| ``int8`` | a QDQ graph: convolutions and matmuls int8 (per-channel weights, calibrated activations), the layers that make the network's outputs and everything after them float32 | 0.015 |
"""

from __future__ import annotations

from sdk.errors import ConfigError

PRECISIONS = ("fp32", "fp16", "bf16", "int8")

#: Largest bbox mAP drop (eager minus exported, mAP@[.5:.95]) a precision passes by default.
DEFAULT_MAX_MAP_DROP = {"fp32": 0.002, "fp16": 0.005, "bf16": 0.005, "int8": 0.015}

#: Reduced float precisions: their score drift is bounded by the gate on mAP, not on scores.
FLOAT_REDUCED = ("fp16", "bf16")


def check_precision(precision: str) -> str:
    """``precision`` if it is one of ``PRECISIONS``; ``ConfigError`` naming the choices otherwise."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    return precision


def default_max_map_drop(precision: str) -> float:
    """The default gate of ``precision`` (see the module table)."""
    return DEFAULT_MAX_MAP_DROP[check_precision(precision)]
