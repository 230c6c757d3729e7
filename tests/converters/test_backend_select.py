"""``--backend auto`` picks TensorRT > AOTInductor (GPU) > ONNX Runtime."""

from __future__ import annotations

import pytest

from sdk.converters import backend_select
from sdk.converters.backend_select import choose_backend
from sdk.errors import BackendUnavailableError, ConfigError


@pytest.fixture
def machine(monkeypatch):
    """``machine(gpu=..., tensorrt=...)`` fakes what this machine has."""

    def fake(*, gpu: bool, tensorrt: bool) -> None:
        monkeypatch.setattr(backend_select, "cuda_gpu_available", lambda: gpu)
        monkeypatch.setattr(backend_select, "tensorrt_installed", lambda: tensorrt)

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


@pytest.mark.parametrize("name", ["onnxruntime", "tensorrt", "aoti"])
def test_explicit_backend_is_kept(machine, name):
    machine(gpu=False, tensorrt=False)
    assert choose_backend(name, "cpu") == name


def test_unknown_backend_or_device_is_rejected():
    with pytest.raises(ConfigError, match="--backend"):
        choose_backend("openvino", "cpu")
    with pytest.raises(BackendUnavailableError, match="device"):
        choose_backend("auto", "gpu0")


def test_real_probes_answer_on_this_machine():
    assert isinstance(backend_select.tensorrt_installed(), bool)
    assert isinstance(backend_select.cuda_gpu_available(), bool)
