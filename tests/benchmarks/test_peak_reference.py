"""The physical reference per precision: which kernel a row at each precision is measured against."""

from __future__ import annotations

import importlib.util

import pytest

from sdk.benchmarks import peak_kernels
from sdk.benchmarks.harness import achieved_throughput
from sdk.benchmarks.peak_flops import measure, peak_throughput, reference_gflops, references
from sdk.benchmarks.peak_kernels import Kernel


def m(kernel: str, precision: str, gflops: float | None, **extra) -> dict:
    record = {"kernel": kernel, "runtime": kernel.split()[0], "op": "matmul", "precision": precision, "shape": "s"}
    return record | ({"gflops": gflops} if gflops is not None else {"error": "NotImplemented: no kernel"}) | extra


MEASUREMENTS = [
    m("numpy fp32", "fp32", 90.0), m("onnxruntime MatMul fp32", "fp32", 280.0), m("openvino Conv fp32", "fp32", 250.0),
    m("torch matmul bf16", "bf16", 1200.0), m("openvino Conv fp16", "fp16", 1500.0), m("openvino Conv bf16", "bf16", None),
    m("onnxruntime MatMulInteger int8", "int8", 3300.0), m("openvino QDQ Conv int8", "int8", 2200.0),
]


def test_each_precision_is_compared_with_the_fastest_kernel_of_its_own_class():
    peak = {"references": references(MEASUREMENTS)}
    assert list(peak["references"]) == ["fp32", "bf16", "int8"]
    assert reference_gflops(peak, precision="fp32") == ("onnxruntime MatMul fp32", 280.0)
    # fp16 and bf16 rows share the half-precision reference; a failed kernel never counts
    assert reference_gflops(peak, precision="bf16") == ("openvino Conv fp16", 1500.0)
    assert reference_gflops(peak, precision="fp16") == ("openvino Conv fp16", 1500.0)
    assert reference_gflops(peak, precision="int8") == ("onnxruntime MatMulInteger int8", 3300.0)


def test_no_fallback_to_another_precision_when_a_class_was_not_measured():
    peak = {"references": references([m("numpy fp32", "fp32", 90.0)])}
    assert reference_gflops(peak, precision="int8") is None
    result = {"device": "cpu", "model": {"gflops": 2.0, "precision": "int8"},
              "batches": [{"batch_size": 1, "images_per_s": 50.0}]}
    achieved = achieved_throughput(result, peak)
    assert achieved["gflops_per_s"] == 100.0 and achieved["fraction_of_peak"] is None
    assert achieved["reference_class"] == "int8"


def test_achieved_throughput_uses_the_rows_precision():
    peak = {"references": references(MEASUREMENTS)}
    result = {"device": "cpu", "model": {"gflops": 2.0, "precision": "bf16"},
              "batches": [{"batch_size": 1, "images_per_s": 50.0}, {"batch_size": 8, "images_per_s": 75.0},
                          {"batch_size": 16, "skipped": "too big"}]}
    achieved = achieved_throughput(result, peak)
    assert achieved["batch_size"] == 8 and achieved["gflops_per_s"] == 150.0
    assert achieved["reference"] == "openvino Conv fp16" and achieved["fraction_of_peak"] == pytest.approx(0.1)
    assert achieved["reference_class"] == "bf16/fp16"


def test_a_runtime_that_ignores_the_precision_hint_is_counted_under_the_precision_it_ran():
    fake = Kernel("ov MatMul bf16", "openvino", "matmul", "bf16", "s", 2e9, lambda: ((lambda: None), "fp32"))
    record = measure(fake, repeats=1)
    assert record["precision"] == "fp32" and record["requested_precision"] == "bf16" and record["gflops"] > 0
    broken = Kernel("ort Conv bf16", "onnxruntime", "conv", "bf16", "s", 1.0, lambda: 1 / 0)
    assert measure(broken)["error"].startswith("ZeroDivisionError")


def test_peak_throughput_records_every_measurement_and_the_references():
    kernels = [Kernel(f"fake {p}", "numpy", "matmul", p, "s", 1e6, lambda: ((lambda: None), None))
               for p in ("fp32", "bf16", "int8")]
    peak = peak_throughput(kernels=kernels, repeats=1)
    assert peak["schema"] == "sdk.benchmark.peak/2" and len(peak["measurements"]) == 3
    assert {c: r["kernel"] for c, r in peak["references"].items()} == {"fp32": "fake fp32", "bf16": "fake bf16",
                                                                        "int8": "fake int8"}


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed")
def test_the_real_kernels_build_and_run_at_a_small_size(monkeypatch):
    """Every ONNX graph and runtime setting of ``peak_kernels`` is valid (tiny sizes:
    the rates mean nothing here)."""
    monkeypatch.setattr(peak_kernels, "MATMUL_N", 64)
    monkeypatch.setattr(peak_kernels, "CONV_C", 8)
    monkeypatch.setattr(peak_kernels, "CONV_HW", 8)
    peak = peak_throughput(threads=1, with_torch=importlib.util.find_spec("torch") is not None, repeats=1)
    errors = {r["kernel"]: r["error"] for r in peak["measurements"] if "error" in r}
    # OpenVINO fp16 on a CPU without fp16 arithmetic may refuse; everything else must run
    assert not {k: e for k, e in errors.items() if "fp16" not in k}
    kernels = {r["kernel"] for r in peak["measurements"]}
    assert {"onnxruntime MatMul fp32", "onnxruntime Conv3x3 fp32", "onnxruntime MatMulInteger int8",
            "onnxruntime QDQ MatMul int8", "onnxruntime QDQ Conv3x3 int8"} <= kernels
    assert "numpy matmul fp32" not in kernels  # its thread count cannot be set to match threads=1
    if importlib.util.find_spec("openvino") is not None:
        assert {"openvino MatMul bf16", "openvino QDQ Conv3x3 int8"} <= kernels
    assert {"fp32", "int8"} <= set(peak["references"])
