"""Shared fixtures of the benchmark tests."""

from __future__ import annotations

import pytest

from sdk.benchmarks.committed_suites import random_checkpoint


@pytest.fixture(scope="module")
def make_random_checkpoint(tmp_path_factory):
    """``make(model_name) -> Path``: a seed-0 random-weight checkpoint, built with one
    torch thread (more threads than free cores make a loaded CI machine erratic)."""
    torch = pytest.importorskip("torch")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield lambda name: random_checkpoint(name, tmp_path_factory.mktemp("ckpt") / f"{name}.pt", seed=0)
    torch.set_num_threads(previous)


def fake_batch(batch_size: int, ms_per_image: float) -> dict:
    """A timed-batch record of ``sdk.benchmarks.harness`` with made-up numbers."""
    from sdk.benchmarks.timing import STAGES

    e2e = ms_per_image * batch_size
    stat = lambda v: {"mean": v, "p50": v, "p90": v, "p99": v, "min": v, "max": v}  # noqa: E731
    return {
        "batch_size": batch_size, "iterations": 2, "stages_ms": {s: stat(e2e / len(STAGES)) for s in STAGES},
        "end_to_end_ms": stat(e2e), "ms_per_image": ms_per_image, "images_per_s": 1e3 / ms_per_image,
        "inference_images_per_s": 1e3 / ms_per_image, "pre_post_share": 0.25, "peak_rss_mb": 100.0,
        "peak_rss_scope": "block", "peak_gpu_allocated_mb": None,
    }


def fake_result(name: str, precision: str, ms_per_image: dict[int, float], *, gflops: float = 2.0,
                mAP: float | None = None) -> dict:
    """A ``benchmark_pipeline`` result with made-up timings (``{batch: ms per image}``)."""
    from sdk.benchmarks.environment import environment

    return {
        "schema": "sdk.benchmark/1", "name": name, "device": "cpu",
        "model": {"path": name, "kind": "model_dir", "model_name": "fake", "backend": name.split()[0],
                  "precision": precision, "input_hw": [320, 320], "size_mb": 3.0, "parameters": 10, "gflops": gflops},
        "settings": {"warmup": 0, "iters": 2, "duration_s": None, "batch_sizes": list(ms_per_image), "threads": 1,
                     "images": "fake"},
        "batches": [fake_batch(b, ms) for b, ms in ms_per_image.items()],
        "accuracy": {"bbox_mAP": mAP, "bbox_mAP_50": mAP} if mAP is not None else None,
        "environment": environment(),
    }


PEAK = {
    "schema": "sdk.benchmark.peak/2", "device": "cpu", "threads": None, "seconds": 1.0,
    "measurements": [
        {"kernel": "ort MatMul fp32", "runtime": "onnxruntime", "op": "matmul", "precision": "fp32", "shape": "s",
         "gflops": 100.0},
        {"kernel": "ov Conv bf16", "runtime": "openvino", "op": "conv", "precision": "bf16", "shape": "s",
         "gflops": 400.0},
        {"kernel": "ort MatMulInteger int8", "runtime": "onnxruntime", "op": "matmul", "precision": "int8",
         "shape": "s", "gflops": 800.0},
    ],
}


@pytest.fixture
def fake_suite():
    """``make(dataset=False, batch_sizes=(1, 8)) -> suite dict``: a run_suite result with
    made-up rows (eager references, onnxruntime fp32/int8, openvino bf16, a skipped
    tensorrt) and the per-precision reference of ``PEAK``."""
    from sdk.benchmarks.environment import LoadMonitor, environment
    from sdk.benchmarks.harness import achieved_throughput
    from sdk.benchmarks.peak_flops import references

    def build(dataset: bool = False, batch_sizes: tuple[int, ...] = (1, 8)) -> dict:
        peak = {**PEAK, "references": references(PEAK["measurements"])}
        speeds = {"sdk eager": 40.0, "onnxruntime fp32": 20.0, "onnxruntime int8": 10.0, "openvino bf16": 8.0}
        rows = [{"name": "torchvision eager", "backend": "torchvision eager", "precision": "fp32", "status": "n/a",
                 "reason": "torchvision has no builder for 'fake'"}]
        for name, ms in speeds.items():
            backend, precision = (name, "fp32") if name == "sdk eager" else name.split()
            result = fake_result(name, precision, {b: ms / b ** 0.5 for b in batch_sizes},
                                 mAP=0.5 if dataset else None)
            result["achieved"] = achieved_throughput(result, peak)
            row = {"name": name, "backend": backend, "precision": precision, "status": "ok", "result": result}
            if precision == "int8":
                row["calibration"] = {"calib_images": "x", "description": "the 8 benchmark images"}
            rows.append(row)
        rows.append({"name": "tensorrt fp16", "backend": "tensorrt", "precision": "fp16", "status": "skipped",
                     "reason": "TensorRT needs a CUDA GPU (run with --device cuda)"})
        load = LoadMonitor().finish()
        return {
            "schema": "sdk.benchmark.suite/2", "checkpoint": "fake.pt", "model_name": "fake", "device": "cpu",
            "input_hw": [320, 320], "batch_sizes": list(batch_sizes), "dataset": "val.json" if dataset else None,
            "cost": {"parameters": 10, "gflops": 2.0}, "peak_reference": peak, "rows": rows, "load": load,
            "environment": environment(load=load),
        }

    return build


@pytest.fixture
def make_fake_result():
    """``fake_result`` (a made-up ``benchmark_pipeline`` result) for tests that stub the timing."""
    return fake_result
