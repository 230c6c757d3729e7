"""What a benchmark ran on (CPU, its vector extensions, cores, GPU, library versions,
date, machine load) and peak memory.

Torch is never imported here: its version and GPU are read only when the process
already imported it (or through ``importlib.metadata``), so benchmarking an ONNX
Runtime model_dir stays torch-free. Results from different CPUs must not be mixed:
every result records the CPU model and the flags that decide which kernels run
(AVX-512 VNNI/BF16/FP16 and AMX make int8 and bf16 several times faster than fp32).
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
              "openvino", "torch", "torchvision", "tensorrt", "pycocotools")

# /proc/cpuinfo flags that select inference kernels (int8 dot products, bf16/fp16 math, AMX tiles).
INFERENCE_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "avx512_fp16", "amx_tile",
                   "amx_bf16", "amx_int8", "amx_fp16")


def environment(load: dict[str, Any] | None = None) -> dict[str, Any]:
    """CPU model, inference flags and cores, GPU name (when torch drives one), library
    versions, UTC date, load averages now (1/5/15 min: other processes competing for
    the CPU skew timings) and, given ``load`` (``LoadMonitor.to_dict()``), the load
    before, during and after the run."""
    logical = os.cpu_count()
    out = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "host": platform.node(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_flags": cpu_flags(),
        "cpu_cores": logical,  # logical CPUs (kept under its old name for older readers)
        "cpu_cores_logical": logical,
        "cpu_cores_physical": physical_cores(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average_1m": _loadavg()[0],
        "load_average": _loadavg(),
        "gpu": gpu_name(),
        "libraries": library_versions(),
    }
    if load is not None:
        out["load"] = load
    return out


def cpu_model() -> str:
    info = _cpuinfo_field("model name")
    return info or platform.processor() or platform.machine()


def cpu_id() -> dict[str, str] | None:
    """Vendor, family, model and stepping (``/proc/cpuinfo``): under a hypervisor the model
    name can be as generic as "Intel(R) Xeon(R) Processor", and these tell the parts apart."""
    fields = {"vendor": "vendor_id", "family": "cpu family", "model": "model", "stepping": "stepping"}
    values = {key: _cpuinfo_field(name) for key, name in fields.items()}
    return values if any(values.values()) else None


def cpu_label(env: dict[str, Any]) -> str:
    """One readable CPU description of an ``environment()`` record, e.g.
    ``"Intel(R) Xeon(R) Processor (GenuineIntel family 6 model 167)"``."""
    ident = env.get("cpu_id") or {}
    detail = " ".join(p for p in (ident.get("vendor"), ident.get("family") and f"family {ident['family']}",
                                  ident.get("model") and f"model {ident['model']}") if p)
    return f"{env.get('cpu_model')} ({detail})" if detail else str(env.get("cpu_model"))


def cpu_flags(wanted: tuple[str, ...] = INFERENCE_FLAGS) -> dict[str, bool] | None:
    """``{flag: present}`` for each of ``wanted`` (``/proc/cpuinfo``; ``None`` where it
    cannot be read, e.g. macOS)."""
    flags = _cpuinfo_field("flags")
    if flags is None:
        return None
    present = set(flags.split())
    return {flag: flag in present for flag in wanted}


def physical_cores() -> int | None:
    """Physical cores of the machine: distinct (package, core) pairs of the online CPUs
    (hyper-thread siblings count once); ``None`` when the topology cannot be read."""
    cores = set()
    for topo in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        try:
            cores.add(((topo / "physical_package_id").read_text().strip(), (topo / "core_id").read_text().strip()))
        except OSError:
            continue
    return len(cores) or None


def _cpuinfo_field(name: str) -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.split(":", 1)[0].strip() == name:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def _loadavg() -> list[float] | None:
    return [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None


class LoadMonitor:
    """The machine's 1-minute load average before, during (sampled by ``sample()``, e.g.
    between suite rows) and after a run.

    The benchmark itself keeps up to one runnable thread per core, so a load up to the
    logical core count (plus ``OWN_LOAD_MARGIN`` for its sampling and bookkeeping threads)
    is the run alone; above that other processes competed for the CPU and timings are
    inflated: ``busy`` says so and ``sdk.benchmarks.result_files`` refuses to let such a
    run replace a committed result.
    """

    OWN_LOAD_MARGIN = 0.5

    def __init__(self) -> None:
        self.logical_cores = os.cpu_count() or 1
        self.before = _loadavg()
        self.after: list[float] | None = None
        self.samples: list[float] = [self.before[0]] if self.before else []

    def sample(self) -> None:
        now = _loadavg()
        if now:
            self.samples.append(now[0])

    def finish(self) -> dict[str, Any]:
        """Record the load after the run; returns ``to_dict()``."""
        self.after = _loadavg()
        if self.after:
            self.samples.append(self.after[0])
        return self.to_dict()

    @property
    def max_1m(self) -> float | None:
        return max(self.samples) if self.samples else None

    @property
    def busy(self) -> bool:
        return self.max_1m is not None and self.max_1m > self.logical_cores + self.OWN_LOAD_MARGIN

    def to_dict(self) -> dict[str, Any]:
        """``{"before": [1m, 5m, 15m], "after": [...], "max_1m", "samples", "logical_cores", "busy"}``."""
        return {"before": self.before, "after": self.after, "max_1m": self.max_1m, "samples": len(self.samples),
                "logical_cores": self.logical_cores, "busy": self.busy}


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
