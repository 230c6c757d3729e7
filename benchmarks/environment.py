"""What a benchmark ran on (CPU, GPU, library versions, date, machine load) and peak memory.

Torch is never imported here: its version and GPU are read only when the process
already imported it (or through ``importlib.metadata``), so benchmarking an ONNX
Runtime model_dir stays torch-free.
"""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

_LIBRARIES = ("sdk-detect", "numpy", "opencv-python-headless", "onnxruntime", "onnxruntime-gpu", "onnx",
              "torch", "torchvision", "tensorrt", "pycocotools")


def environment() -> dict[str, Any]:
    """CPU model and cores, GPU name (when torch drives one), library versions, UTC date,
    1-minute load average (other processes competing for the CPU skew timings)."""
    return {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "gpu": gpu_name(),
        "libraries": library_versions(),
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return torch.cuda.get_device_name()
    return None


def library_versions() -> dict[str, str]:
    versions = {}
    for name in _LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


class PeakMemory:
    """Peak memory over a ``with`` block: host RSS and, when torch drives a CUDA device,
    ``torch.cuda.max_memory_allocated``.

    On Linux the RSS high-water mark is reset on entry (``/proc/self/clear_refs``) and
    read from ``/proc/self/status`` (VmHWM) on exit, so each block reports its own peak;
    elsewhere it is the process's peak so far (``getrusage``). ``rss_mb`` and
    ``gpu_mb`` are set on exit (``gpu_mb`` None without CUDA torch).
    """

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.rss_mb: float | None = None
        self.gpu_mb: float | None = None
        self.rss_scope = "process"

    def __enter__(self) -> "PeakMemory":
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.rss_scope = "block"
        except OSError:
            self.rss_scope = "process"
        torch = self._cuda_torch()
        if torch is not None:
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.rss_mb = _vm_hwm_mb() if self.rss_scope == "block" else None
        if self.rss_mb is None:
            self.rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        torch = self._cuda_torch()
        if torch is not None:
            self.gpu_mb = torch.cuda.max_memory_allocated(self.device) / 2**20

    def to_dict(self) -> dict[str, Any]:
        return {"peak_rss_mb": self.rss_mb, "peak_rss_scope": self.rss_scope, "peak_gpu_allocated_mb": self.gpu_mb}

    def _cuda_torch(self):
        torch = sys.modules.get("torch")
        if torch is not None and str(self.device).startswith("cuda") and torch.cuda.is_available():
            return torch
        return None


def _vm_hwm_mb() -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None
