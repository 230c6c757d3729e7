"""A ``tensorrt`` stand-in that exposes exactly one version's Python API surface.

``fake_tensorrt("10")`` has the member names of NVIDIA's published TensorRT 10.13 type
stubs (``tensorrt_surface_10.json``, made by ``make_tensorrt_surface.py``);
``fake_tensorrt("11")`` the same minus ``sdk.runtime.tensorrt_api.REMOVED_IN_TENSORRT_11``
(the 10.x -> 11.x migration table). Reading or setting any other name raises
``AttributeError``, as the real module would, so a code path that touches a name
TensorRT 11 removed fails its test. Calls are recorded in ``module.calls`` as
``(owner, name, args)``; objects behave just enough for the SDK's build and run paths.
"""

from __future__ import annotations

import json
import types
from pathlib import Path
from typing import Any

from sdk.runtime.tensorrt_api import REMOVED_IN_TENSORRT_11

SURFACE_10: dict[str, list[str]] = {
    k: v for k, v in json.loads(Path(__file__).with_name("tensorrt_surface_10.json").read_text()).items()
    if isinstance(v, list)
}
VERSIONS = {"10": "10.13.0.35", "11": "11.1.0.106"}


def surface(version: str) -> dict[str, set[str]]:
    """Class (or ``"tensorrt"`` for module-level classes) -> member names of that version."""
    names = {owner: set(members) for owner, members in SURFACE_10.items()}
    if version == "11":
        for owner, removed in REMOVED_IN_TENSORRT_11.items():
            names[owner] -= set(removed)
    return names


class _Strict:
    """An object of TensorRT class ``owner``: only that class's member names exist."""

    def __init__(self, module: types.ModuleType, owner: str, **values: Any) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_values", values)

    def _check(self, name: str) -> None:
        if name not in self._module.surface[self._owner]:
            raise AttributeError(f"'tensorrt.{self._owner}' object has no attribute '{name}' "
                                 f"(TensorRT {self._module.__version__})")

    def __getattr__(self, name: str) -> Any:
        """A given value: plain values are properties, callables methods; any other
        member of the surface is a method returning ``None``. Calls are recorded."""
        self._check(name)
        value = self._values.get(name)
        if name in self._values and not callable(value):
            return value

        def method(*args: Any, **kwargs: Any) -> Any:
            self._module.calls.append((self._owner, name, args))
            return value(*args, **kwargs) if callable(value) else None
        return method

    def __setattr__(self, name: str, value: Any) -> None:
        self._check(name)
        self._module.calls.append((self._owner, name, (value,)))
        self._values[name] = value


class _Enum(types.SimpleNamespace):
    """An enum class: members are ints with a ``name``; unknown members raise."""

    def __init__(self, module: types.ModuleType, owner: str) -> None:
        super().__init__()
        self._module, self._owner = module, owner
        members = sorted(n for n in module.surface[owner] if n.isupper() or n[0].isupper() and n != "Members")
        for value, name in enumerate(members):
            member = _Member(value)
            member.name = name
            object.__setattr__(self, name, member)

    def __getattr__(self, name: str) -> Any:  # only called for missing names
        raise AttributeError(f"type object 'tensorrt.{self._owner}' has no attribute '{name}' "
                             f"(TensorRT {self._module.__version__})")


class _Member(int):
    name: str


def fake_tensorrt(version: str, *, engine: dict | None = None) -> types.ModuleType:
    """The stand-in module. ``engine``: the I/O of the engine ``Runtime`` deserializes,
    ``{tensor name: (mode "INPUT"/"OUTPUT", DataType name)}``."""
    trt = types.ModuleType("tensorrt")
    trt.__version__ = VERSIONS[version]
    trt.surface = surface(version)
    trt.calls = []
    for owner in ("BuilderFlag", "NetworkDefinitionCreationFlag", "MemoryPoolType", "TensorIOMode", "DataType"):
        setattr(trt, owner, _Enum(trt, owner))
    trt.float32, trt.float16, trt.int32 = trt.DataType.FLOAT, trt.DataType.HALF, trt.DataType.INT32

    class Logger(_Strict):
        WARNING, ERROR, INFO, VERBOSE = 2, 1, 3, 4

        def __init__(self, severity: int = 2) -> None:
            super().__init__(trt, "Logger")

    def builder(logger: Any) -> _Strict:
        profile = _Strict(trt, "IOptimizationProfile")
        config = _Strict(trt, "IBuilderConfig",
                         create_timing_cache=lambda data: _Strict(trt, "ITimingCache", serialize=lambda: b"cache"))
        network = _Strict(trt, "INetworkDefinition", get_input=lambda i: _Strict(trt, "ITensor", name="images"), num_inputs=1)
        return _Strict(trt, "Builder", create_network=lambda flags: network, create_builder_config=lambda: config,
                       create_optimization_profile=lambda: profile, build_serialized_network=lambda n, c: b"engine")

    def parser(network: Any, logger: Any) -> _Strict:
        return _Strict(trt, "OnnxParser", parse_from_file=lambda path: True, num_errors=0)

    io = dict(engine or {})

    def deserialize(data: bytes) -> _Strict:
        names = list(io)
        context = _Strict(trt, "IExecutionContext", execute_async_v3=lambda stream: True)
        return _Strict(
            trt, "ICudaEngine", num_io_tensors=len(names), get_tensor_name=lambda i: names[i],
            get_tensor_mode=lambda n: getattr(trt.TensorIOMode, io[n][0]),
            get_tensor_dtype=lambda n: getattr(trt.DataType, io[n][1]),
            create_execution_context=lambda: context, device_memory_size_v2=1 << 20,
            device_memory_size=1 << 20,  # 10.x only: the surface check hides it on 11
        )

    trt.Logger = Logger
    trt.Builder = lambda logger: builder(logger)
    trt.OnnxParser = parser
    trt.Runtime = lambda logger: _Strict(trt, "Runtime", deserialize_cuda_engine=deserialize)
    for name in ("IInt8EntropyCalibrator2", "IInt8Calibrator", "IInt8MinMaxCalibrator"):
        if name in trt.surface["tensorrt"]:
            setattr(trt, name, type(name, (), {}))
    return trt


def fake_cudart(*, sm: tuple[int, int] = (9, 0), devices: int = 1) -> types.SimpleNamespace:
    """cuda-python's runtime module, enough for ``TensorRTBackend``: every call succeeds."""
    pointers = iter(range(0x1000, 1 << 40, 0x1000))
    props = types.SimpleNamespace(major=sm[0], minor=sm[1], name=b"NVIDIA Fake GPU")
    return types.SimpleNamespace(
        cudaGetDeviceCount=lambda: (0, devices), cudaSetDevice=lambda i: (0,),
        cudaGetDeviceProperties=lambda i: (0, props), cudaStreamCreate=lambda: (0, 7),
        cudaMalloc=lambda n: (0, next(pointers)), cudaFree=lambda p: (0,), cudaStreamDestroy=lambda s: (0,),
        cudaMemcpyAsync=lambda *a: (0,), cudaStreamSynchronize=lambda s: (0,),
        cudaMemcpyKind=types.SimpleNamespace(cudaMemcpyHostToDevice=1, cudaMemcpyDeviceToHost=2),
    )

