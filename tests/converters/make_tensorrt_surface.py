"""Regenerate ``tensorrt_surface_10.json`` from NVIDIA's published type stubs.

    pip download --no-deps -d /tmp/stubs tensorrt-stubs && unzip -o /tmp/stubs/*.whl -d /tmp/stubs
    python tests/converters/make_tensorrt_surface.py /tmp/stubs/tensorrt_bindings/tensorrt.pyi

The stubs are not installed in the test environment: their ``tensorrt/`` folder of
``.pyi`` files would make ``import tensorrt`` look available. The JSON keeps, for the
classes the SDK touches, every public member name the stubs declare.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

CLASSES = (
    "Builder", "IBuilderConfig", "INetworkDefinition", "OnnxParser", "IOptimizationProfile", "Logger", "Runtime",
    "ICudaEngine", "IExecutionContext", "ITimingCache", "ITensor", "BuilderFlag", "NetworkDefinitionCreationFlag",
    "MemoryPoolType", "TensorIOMode", "DataType", "IHostMemory",
)


def surface(pyi: Path) -> dict[str, list[str]]:
    """Line-based: the stubs are generated and not always valid Python (a non-default
    argument after a default one), so ``ast`` cannot read them."""
    classes: dict[str, set[str]] = {}
    current = None
    for line in pyi.read_text().splitlines():
        top = re.match(r"class (\w+)", line)
        if top:
            current = classes.setdefault(top.group(1), set())
            continue
        if line and not line.startswith((" ", "\t")):
            current = None
        member = re.match(r"    (?:def (\w+)\(|(\w+)\s*:)", line)
        if current is not None and member:
            current.add(member.group(1) or member.group(2))
    out = {"tensorrt": sorted(n for n in classes if not n.startswith("_"))}
    for name in CLASSES:
        out[name] = sorted(n for n in classes[name] if not n.startswith("_") or n == "__init__")
    return out


if __name__ == "__main__":
    stub, version = Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "10.13.0.35"
    data = {"source": f"tensorrt-stubs {version} (PyPI), tensorrt_bindings/tensorrt.pyi", **surface(stub)}
    target = Path(__file__).with_name("tensorrt_surface_10.json")
    target.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    print(target, sum(len(v) for v in data.values() if isinstance(v, list)), "names")
