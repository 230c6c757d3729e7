"""Skip markers for tests that need something of the CPU they run on."""

from __future__ import annotations

import pytest


def openvino_cpu_has_bf16() -> bool:
    """OpenVINO's CPU plugin can run bfloat16 here (AVX512_BF16 or AMX): False without openvino."""
    try:
        import openvino as ov
    except ImportError:
        return False
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


requires_openvino_bf16 = pytest.mark.skipif(
    not openvino_cpu_has_bf16(), reason="this CPU has no bfloat16 support (AVX512_BF16 or AMX) for OpenVINO to run bf16"
)
