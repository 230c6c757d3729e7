"""What differs between TensorRT versions, in one place: the version gate, the names
TensorRT 11 removed, the network creation flags, and the build target an engine is
tied to (TensorRT version and GPU SM).

The SDK writes to the API common to TensorRT 10.10+ and 11.x: strongly typed
networks (precision comes from the graph: the fp16 graph's casts, the int8 graph's
Q/DQ nodes), no builder precision flags, no calibrators, no ``EXPLICIT_BATCH``,
``device_memory_size_v2``. ``REMOVED_IN_TENSORRT_11`` lists what TensorRT 11 took away
(the 10.x -> 11.x migration table); tests run the build and run paths against a
TensorRT stand-in without those names and scan the source for them.

Pure functions: nothing here imports TensorRT; callers pass the ``tensorrt`` module in.
"""

from __future__ import annotations

from typing import Any, Mapping

from sdk.errors import BackendUnavailableError

#: the ONNX parser maps an ``sdk::Op`` node to plugin ``sdk::Op`` (namespace = node domain)
#: from 10.10; ``tensorrt.plugin.aot_impl`` exists from 10.9
MIN_TENSORRT = (10, 10)

#: owner -> attribute names TensorRT 11 removed from the Python API (migration table).
#: Owner ``"tensorrt"`` means module-level names.
REMOVED_IN_TENSORRT_11: dict[str, tuple[str, ...]] = {
    "BuilderFlag": ("FP16", "BF16", "INT8", "FP8", "INT4", "FP4",
                    "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS"),
    "IBuilderConfig": ("int8_calibrator", "set_calibration_profile", "get_calibration_profile",
                       "set_quantization_flag", "clear_quantization_flag", "get_quantization_flag",
                       "quantization_flags"),
    "NetworkDefinitionCreationFlag": ("EXPLICIT_BATCH",),
    "ICudaEngine": ("device_memory_size",),
    "tensorrt": ("IInt8Calibrator", "IInt8EntropyCalibrator", "IInt8EntropyCalibrator2",
                 "IInt8MinMaxCalibrator", "IInt8LegacyCalibrator", "CalibrationAlgoType", "QuantizationFlag"),
}


def parse_version(version: str) -> tuple[int, int]:
    """``"10.13.0.35"`` -> (10, 13); missing or non-numeric parts count as 0."""
    parts = [int(p) if p.isdigit() else 0 for p in str(version).split(".")[:2]]
    return tuple(parts + [0] * (2 - len(parts)))  # type: ignore[return-value]


def check_tensorrt_version(version: str) -> None:
    """One-line ``BackendUnavailableError`` unless ``version`` (``tensorrt.__version__``) is >= 10.10."""
    if parse_version(version) < MIN_TENSORRT:
        raise BackendUnavailableError(
            f"TensorRT {version} is too old: the SDK needs TensorRT >= {'.'.join(map(str, MIN_TENSORRT))} "
            "(strongly typed networks, plugin nodes by ONNX domain, AOT plugins): pip install -U tensorrt"
        )


def network_flags(trt: Any, *, aot_plugins: bool) -> int:
    """``create_network`` flags: ``STRONGLY_TYPED`` (10.x: opt-in; 11.x: the only mode, the
    flag a deprecated no-op), and ``PREFER_AOT_PYTHON_PLUGINS`` when plugins with both an
    AOT and a Python implementation are registered (TensorRT refuses to pick otherwise)."""
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    if aot_plugins:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.PREFER_AOT_PYTHON_PLUGINS)
    return flags


def sm_name(major: int, minor: int) -> str:
    """Compute capability (9, 0) -> ``"sm_90"``."""
    return f"sm_{int(major)}{int(minor)}"


def build_target(tensorrt_version: str, compute_capability: tuple[int, int], gpu_name: str = "") -> dict[str, str]:
    """The manifest's ``build_target`` of an engine: ``{"tensorrt", "sm", "gpu"}``."""
    return {"tensorrt": str(tensorrt_version), "sm": sm_name(*compute_capability), "gpu": str(gpu_name)}


def target_mismatch(built: Mapping[str, str], here: Mapping[str, str]) -> str | None:
    """Why an engine built for ``built`` cannot run ``here`` (both ``build_target`` dicts),
    as one sentence; ``None`` when it can. TensorRT engines are tied to the exact TensorRT
    version and to the GPU's SM (engines are not built hardware-compatible)."""
    problems = []
    if built.get("tensorrt") and built["tensorrt"] != here.get("tensorrt"):
        problems.append(f"TensorRT {built['tensorrt']} (this machine has {here.get('tensorrt')})")
    if built.get("sm") and built["sm"] != here.get("sm"):
        gpu = f" {here['gpu']}" if here.get("gpu") else ""
        problems.append(f"a {built['sm']} GPU{' ' + built['gpu'] if built.get('gpu') else ''} "
                        f"(this one is {here.get('sm')}{gpu})")
    if not problems:
        return None
    return f"the engine was built for {' and '.join(problems)}"
