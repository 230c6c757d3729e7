"""``--backend auto`` picks TensorRT > AOTInductor (GPU) > ONNX Runtime; on a CPU
OpenVINO for bf16 and int8."""

from __future__ import annotations

import pytest

from sdk.converters import backend_select
from sdk.converters.backend_select import choose_backend
from sdk.errors import BackendUnavailableError, ConfigError


@pytest.fixture
def machine(monkeypatch):
    """``machine(gpu=..., tensorrt=...)`` fakes what this machine has."""

    def fake(*, gpu: bool, tensorrt: bool, openvino: bool = True) -> None:
        monkeypatch.setattr(backend_select, "cuda_gpu_available", lambda: gpu)
        monkeypatch.setattr(backend_select, "tensorrt_installed", lambda: tensorrt)
        monkeypatch.setattr(backend_select, "openvino_installed", lambda: openvino)

    return fake


@pytest.mark.parametrize(
    ("device", "gpu", "tensorrt", "expected"),
    [
        ("cuda", True, True, "tensorrt"),
        ("cuda:1", True, True, "tensorrt"),
        ("cuda", True, False, "aoti"),
        ("cuda", False, True, "onnxruntime"),  # TensorRT installed but no GPU visible
        ("cuda", False, False, "onnxruntime"),
        ("cpu", True, True, "onnxruntime"),  # the user asked for CPU
    ],
)
def test_auto_choice(machine, device, gpu, tensorrt, expected):
    machine(gpu=gpu, tensorrt=tensorrt)
    assert choose_backend("auto", device) == expected


@pytest.mark.parametrize(
    ("precision", "openvino", "expected"),
    [("fp32", True, "onnxruntime"), ("fp16", True, "onnxruntime"), ("bf16", True, "openvino"),
     ("int8", True, "openvino"), ("int8", False, "onnxruntime")],
)
def test_auto_choice_on_a_cpu_follows_the_precision(machine, precision, openvino, expected):
    machine(gpu=False, tensorrt=False, openvino=openvino)
    assert choose_backend("auto", "cpu", precision) == expected


def test_auto_on_a_gpu_without_tensorrt_never_picks_aoti_for_int8(machine):
    machine(gpu=True, tensorrt=False)
    assert choose_backend("auto", "cuda", "int8") == "onnxruntime"
    assert choose_backend("auto", "cuda", "fp16") == "aoti"


@pytest.mark.parametrize("name", ["onnxruntime", "openvino", "tensorrt", "aoti"])
def test_explicit_backend_is_kept(machine, name):
    machine(gpu=False, tensorrt=False)
    assert choose_backend(name, "cpu") == name


def test_unknown_backend_or_device_is_rejected():
    with pytest.raises(ConfigError, match="--backend"):
        choose_backend("ncnn", "cpu")
    with pytest.raises(BackendUnavailableError, match="device"):
        choose_backend("auto", "gpu0")


def test_real_probes_answer_on_this_machine():
    assert isinstance(backend_select.tensorrt_installed(), bool)
    assert isinstance(backend_select.cuda_gpu_available(), bool)
