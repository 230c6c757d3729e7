"""The machine's achievable dense throughput per precision: the physical reference for model speed.

A large dense MatMul or 3x3 Conv is the best case for a processor (every operand
reused many times), so the fastest kernel at a precision bounds what a detector can
reach at that precision on the same device. ``peak_throughput`` times every kernel of
``sdk.benchmarks.peak_kernels`` whose runtime is installed (ONNX Runtime, OpenVINO,
numpy, torch) and keeps, per reference class, the fastest one:

| class | row precisions | kernels |
|---|---|---|
| ``fp32`` | fp32 | fp32 MatMul/Conv of every runtime |
| ``bf16`` | bf16, fp16 | bf16 and fp16 kernels (AMX/AVX-512 BF16 on CPU; tensor cores on GPU) |
| ``int8`` | int8 | MatMulInteger and QDQ MatMul/Conv (VNNI/AMX) |

Each backend row's achieved GFLOP/s (model GFLOPs x images/s) is reported as a
fraction of its own class's reference (``reference_gflops``). A kernel that fails or
whose runtime overrides the precision asked for is recorded as such, never counted
under the wrong class. About 5-10 s on a 2-core CPU.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable

log = logging.getLogger(__name__)

PEAK_SCHEMA = "sdk.benchmark.peak/2"
REFERENCE_CLASS = {"fp32": "fp32", "bf16": "bf16", "fp16": "bf16", "int8": "int8"}
CLASS_LABEL = {"fp32": "fp32", "bf16": "bf16/fp16", "int8": "int8"}


def best_seconds(run: Callable[[], Any], *, repeats: int = 5, warmup: int = 2) -> float:
    """Fastest of ``repeats`` timed calls of ``run`` after ``warmup`` untimed ones (the
    first calls allocate and pack weights). ``run`` must synchronize its device itself."""
    for _ in range(warmup):
        run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def measure(kernel: Any, *, repeats: int = 5) -> dict[str, Any]:
    """One ``peak_kernels.Kernel`` timed: ``{"kernel", "runtime", "op", "precision",
    "shape", "gflops", "best_ms"}`` plus ``"requested_precision"`` when the runtime ran
    another precision than asked, or ``"error"`` (one line) when it could not run."""
    record: dict[str, Any] = {"kernel": kernel.name, "runtime": kernel.runtime, "op": kernel.op,
                              "precision": kernel.precision, "shape": kernel.shape}
    try:
        run, actual = kernel.build()
        seconds = best_seconds(run, repeats=repeats)
    except Exception as exc:  # one runtime lacking a kernel must not hide the others
        record["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        return record
    if actual and actual != kernel.precision and kernel.precision != "int8":
        record.update(requested_precision=kernel.precision, precision=actual)
    record.update(gflops=round(kernel.flops / seconds / 1e9, 1), best_ms=round(1e3 * seconds, 3))
    return record


def peak_throughput(
    *, device: str = "cpu", threads: int | None = None, with_torch: bool | None = None, repeats: int = 5,
    kernels: list[Any] | None = None,
) -> dict[str, Any]:
    """Time the dense kernels for ``device`` and pick each precision class's reference.

    ``threads``: CPU threads per kernel (default every core, the libraries' default);
    numpy's BLAS threads cannot be set, so numpy is left out when ``threads`` is given.
    ``with_torch`` defaults to "torch is already imported" (an ONNX Runtime benchmark
    stays torch-free). ``kernels`` replaces the kernel list (tests).

    Returns ``{"schema", "device", "threads", "seconds", "measurements": [measure()...],
    "references": {class: {"kernel", "gflops", "op", "precision"}}}``.
    """
    from sdk.benchmarks import peak_kernels

    torch = sys.modules.get("torch") if with_torch is None else (__import__("torch") if with_torch else None)
    start = time.perf_counter()
    if kernels is None:
        if str(device).startswith("cuda"):
            if torch is None:
                torch = __import__("torch")
            kernels = peak_kernels.cuda_kernels(device) if torch.cuda.is_available() else []
        else:
            kernels = peak_kernels.cpu_kernels(threads=threads, with_torch=torch is not None, with_numpy=threads is None)
    previous = torch.get_num_threads() if torch is not None and threads else None
    if previous is not None:
        torch.set_num_threads(threads)
    try:
        measurements = []
        for kernel in kernels:
            measurements.append(measure(kernel, repeats=repeats))
            log.info("peak: %s", measurements[-1])
    finally:
        if previous is not None:
            torch.set_num_threads(previous)
    return {
        "schema": PEAK_SCHEMA,
        "device": device,
        "threads": threads,
        "seconds": round(time.perf_counter() - start, 1),
        "measurements": measurements,
        "references": references(measurements),
    }


def references(measurements: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per reference class (``REFERENCE_CLASS``), the fastest successful measurement."""
    out: dict[str, dict[str, Any]] = {}
    for m in measurements:
        cls = REFERENCE_CLASS.get(m.get("precision", ""))
        if cls is None or "gflops" not in m:
            continue
        if cls not in out or m["gflops"] > out[cls]["gflops"]:
            out[cls] = {"kernel": m["kernel"], "gflops": m["gflops"], "op": m["op"], "precision": m["precision"]}
    return {cls: out[cls] for cls in CLASS_LABEL if cls in out}


def reference_gflops(peak: dict[str, Any], *, device: str = "cpu", precision: str = "fp32") -> tuple[str, float] | None:
    """The reference a backend at ``precision`` is compared with, ``(kernel, GFLOP/s)``:
    fp32 rows -> the fp32 reference, bf16/fp16 -> the bf16 one, int8 -> the int8 one;
    ``None`` when that class was not measured (no silent fallback to another precision).
    ``device`` is kept for callers; ``peak`` was measured on one device."""
    ref = (peak.get("references") or {}).get(REFERENCE_CLASS.get(precision, ""))
    return (ref["kernel"], ref["gflops"]) if ref else None
