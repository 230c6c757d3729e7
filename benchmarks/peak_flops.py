"""The machine's achievable dense throughput: the physical reference for model speed.

A large square matmul is the best case for any processor (every operand reused ``n``
times), so its GFLOP/s bounds what a detector can reach on the same device. Each
backend's achieved GFLOP/s (model GFLOPs x images/s) is reported as a fraction of it.
Counted as ``2 n^3`` FLOPs per matmul (one multiply + one add), the convention of
``torch.utils.flop_counter`` which counts the models.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import numpy as np


def matmul_gflops(run: Callable[[], Any], n: int, *, repeats: int = 10, sync: Callable[[], None] = lambda: None) -> float:
    """Best GFLOP/s of ``repeats`` timed calls of ``run`` (an n x n @ n x n matmul), after one warm-up."""
    run()
    sync()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e9


def peak_throughput(
    *, device: str = "cpu", n_cpu: int = 1024, n_gpu: int = 8192, with_torch: bool | None = None
) -> dict[str, Any]:
    """Dense matmul GFLOP/s: numpy float32 (CPU); torch float32 on ``device`` and, on
    CUDA, float16. ``with_torch`` defaults to "torch is already imported"."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n_cpu, n_cpu), dtype=np.float32)
    b = rng.standard_normal((n_cpu, n_cpu), dtype=np.float32)
    out: dict[str, Any] = {"numpy_fp32_cpu": {"n": n_cpu, "gflops": matmul_gflops(lambda: a @ b, n_cpu)}}
    torch = sys.modules.get("torch") if with_torch is None else (__import__("torch") if with_torch else None)
    if torch is None:
        return out
    if str(device).startswith("cuda") and torch.cuda.is_available():
        sync = lambda: torch.cuda.synchronize(device)  # noqa: E731
        for dtype, key in ((torch.float32, "torch_fp32_cuda"), (torch.float16, "torch_fp16_cuda")):
            x = torch.randn(n_gpu, n_gpu, device=device, dtype=dtype)
            y = torch.randn(n_gpu, n_gpu, device=device, dtype=dtype)
            out[key] = {"n": n_gpu, "gflops": matmul_gflops(lambda: x @ y, n_gpu, sync=sync)}
    else:
        x, y = torch.from_numpy(a), torch.from_numpy(b)
        out["torch_fp32_cpu"] = {"n": n_cpu, "gflops": matmul_gflops(lambda: x @ y, n_cpu)}
    return out


def reference_gflops(peak: dict[str, Any], *, device: str = "cpu", precision: str = "fp32") -> tuple[str, float]:
    """The entry of ``peak`` a backend on ``device`` at ``precision`` is compared with:
    the fastest matching measurement (``(key, GFLOP/s)``)."""
    on_gpu = str(device).startswith("cuda")
    wanted = ("fp16_cuda",) if on_gpu and precision == "fp16" else (("fp32_cuda",) if on_gpu else ("fp32_cpu",))
    candidates = [(k, v["gflops"]) for k, v in peak.items() if k.endswith(wanted)]
    if not candidates:
        candidates = [(k, v["gflops"]) for k, v in peak.items()]
    return max(candidates, key=lambda kv: kv[1])
