"""``python -m sdk.benchmarks.gpu`` / ``benchmarks/gpu/run.sh``: the GPU check's steps in order.

Progress is printed unbuffered; every record goes to the output folder as soon as it
exists (``sdk.benchmarks.gpu.record``). A step that would start after ``--budget-s``
is recorded as skipped, so a run under a hard limit ends with what it measured.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sdk.benchmarks.gpu.record import ResultLog

DEFAULT_OUT = "benchmarks/results/gpu"


def environment_record(device: str) -> dict[str, Any]:
    """GPU, driver and library versions (and the CPU), for the results' first table."""
    import platform

    import torch

    record: dict[str, Any] = {"device": device, "torch": torch.__version__, "cuda (torch)": torch.version.cuda,
                              "python": platform.python_version(), "cpu": _cpu_model(), "cpu cores": os.cpu_count()}
    for module in ("torchvision", "triton", "onnxruntime", "onnx"):
        try:
            record[module] = __import__(module).__version__
        except Exception as exc:  # a missing optional library is a fact to report, not a failure
            record[module] = f"not available ({type(exc).__name__})"
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(device)
        record.update(gpu=props.name, capability=f"sm_{props.major}{props.minor}",
                      gpu_memory_gib=round(props.total_memory / 2**30, 1), driver=_nvidia_smi("driver_version"))
    else:
        record["gpu"] = "none (CPU dry run)"
    return record


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        return re.search(r"model name\s*:\s*(.*)", text).group(1).strip()
    except (OSError, AttributeError):
        import platform

        return platform.processor() or "unknown"


def _nvidia_smi(field: str) -> str | None:
    try:
        out = subprocess.run(["nvidia-smi", f"--query-gpu={field}", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def run_gpu_tests(timeout_s: float, out_dir: Path) -> dict[str, Any]:
    """The ``gpu``-marked tests in a child pytest (Triton natively: no TRITON_INTERPRET)."""
    xml = out_dir / "gpu_tests.xml"
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, env=env)
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        output, code = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or ""), "timeout"
    print(output[-4000:], flush=True)
    lines = [line for line in output.splitlines() if re.search(r"\d+ (passed|failed|skipped|error)", line)]
    return {"command": shlex.join(["pytest", *cmd[3:]]), "returncode": code, "seconds": time.monotonic() - start,
            "summary": lines[-1].strip("= ") if lines else "no summary (see the log)",
            "failed": re.findall(r"^(?:FAILED|ERROR) (\S+)", output, flags=re.M)}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sdk.benchmarks.gpu", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=DEFAULT_OUT, help="results folder (default: %(default)s)")
    p.add_argument("--dry-run", action="store_true",
                   help="run every step on the CPU at tiny sizes, CUDA-only parts reported as skipped")
    p.add_argument("--budget-s", type=float, default=450.0,
                   help="start no step after this many seconds (default %(default)s: under 8 minutes in all)")
    p.add_argument("--steps", nargs="+", default=["environment", "gpu_tests", "kernels", "end_to_end"],
                   choices=["environment", "gpu_tests", "kernels", "end_to_end"], help="steps to run (default: all)")
    p.add_argument("--quickstart-dir", default="runs/quickstart",
                   help="the quickstart's output (train/best.pt, data/annotations/val.json) for its mAP rows")
    p.add_argument("--tests-timeout-s", type=float, default=150.0, help="limit for the gpu-marked tests")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)
    import torch

    start = time.monotonic()
    deadline = start + args.budget_s
    cuda = torch.cuda.is_available() and not args.dry_run
    device = "cuda" if cuda else "cpu"
    if not cuda and not args.dry_run:
        print("error: no CUDA device here; run with --dry-run to check the script on a CPU", file=sys.stderr)
        return 2
    env = environment_record(device)
    stem = "dry-run" if args.dry_run else re.sub(r"[^a-z0-9]+", "-", env["gpu"].lower()).strip("-")
    log = ResultLog(args.out, stem, command=shlex.join(["benchmarks/gpu/run.sh", *(argv or sys.argv[1:])]),
                    dry_run=args.dry_run)
    print(f"[gpu-check] writing {log.paths['md']}", flush=True)
    if "environment" in args.steps:
        log.add("environment", env)
    if "gpu_tests" in args.steps:
        if not cuda:
            log.skip("gpu_tests", "no CUDA device (dry run): the gpu-marked tests would all skip")
        else:
            log.add("gpu_tests", run_gpu_tests(min(args.tests_timeout_s, max(deadline - time.monotonic(), 30)),
                                               log.out_dir))
    if "kernels" in args.steps:
        from sdk.benchmarks.gpu.kernels import TINY, KernelSizes, kernel_records

        try:
            for record in kernel_records(device, KernelSizes() if cuda else TINY):
                print(f"[gpu-check] kernel {record}", flush=True)
                log.add("kernels", record)
        except Exception as exc:  # reported, and the end-to-end step still runs
            logging.getLogger(__name__).exception("kernels failed")
            log.skip("kernels (rest)", f"failed: {type(exc).__name__}: {exc}")
    if "end_to_end" in args.steps:
        _end_to_end(args, log, device=device, cuda=cuda, deadline=deadline)
    print(f"[gpu-check] done in {time.monotonic() - start:.0f} s: {log.paths['md']}", flush=True)
    return 0


def _end_to_end(args: argparse.Namespace, log: ResultLog, *, device: str, cuda: bool, deadline: float) -> None:
    from sdk.benchmarks.gpu.end_to_end import dry_run_models, gpu_models, model_rows

    if cuda:
        models, targets, batches, iters, warmup = gpu_models(Path(args.quickstart_dir)), ["aoti:fp16", "aoti:fp32"], (1, 8), 20, 3
    else:
        log.skip("end_to_end AOTInductor rows", "no CUDA device (dry run): onnxruntime:fp32 stands in for them")
        models, targets, batches, iters, warmup = dry_run_models(), ["onnxruntime:fp32"], (1, 2), 1, 0
    work_dir = Path(args.out) / "work" if not cuda else Path("runs/gpu_check")
    for model in models:
        try:
            for row in model_rows(model, device=device, targets=targets, batch_sizes=batches, iters=iters,
                                  warmup=warmup, work_dir=work_dir, deadline=deadline):
                print(f"[gpu-check] end to end {row['model']} {row['name']}: {row['status']} "
                      f"{row.get('ms_per_img_b1') or row.get('reason', '')}", flush=True)
                log.add("end_to_end", row)
        except Exception as exc:  # one model's failure must not cost the others' numbers
            logging.getLogger(__name__).exception("end to end: %s failed", model.label)
            log.add("end_to_end", {"model": model.label, "name": "(setup)", "precision": "", "status": "failed",
                                   "reason": f"{type(exc).__name__}: {exc}"})
