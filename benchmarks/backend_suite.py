"""``sdk benchmark suite CKPT``: every (backend, precision) on this machine next to two eager references.

For one checkpoint, on the same images and weights:

1. ``torchvision eager``: torchvision's own model (``sdk.benchmarks.torchvision_reference``),
   run the way its users run it; "n/a" for tiny variants torchvision does not have;
2. ``sdk eager``: the SDK's eager model (``Detector(ckpt)``, the ``torch`` backend);
3. each export target (``sdk.benchmarks.targets``, e.g. ``onnxruntime int8``,
   ``openvino bf16``): ``sdk export`` into ``OUT/models/<backend>_<precision>`` then
   ``Detector``. int8 exports calibrate on the suite's dataset when it has one, else on
   the benchmark images (``sdk.benchmarks.exporting.calibration_source``); the row
   records which.

Targets that are not installed, need a GPU or lack kernels (ONNX Runtime bf16 on a
CPU) appear as ``skipped`` with the reason; one that fails to export or run appears as
``failed`` with the error. The FLOP count is taken once on the checkpoint's model and
shared by its exports; the per-precision dense-kernel measurement
(``sdk.benchmarks.peak_flops``) gives each row its fraction of the machine's achievable
throughput at its own precision. The machine's load is sampled before, between rows
and after (``environment.LoadMonitor``). Tables and files: ``sdk.benchmarks.suite_report``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from sdk.errors import BackendUnavailableError, SDKError

log = logging.getLogger(__name__)

SUITE_SCHEMA = "sdk.benchmark.suite/2"
TORCHVISION_ROW = "torchvision eager"
SDK_EAGER_ROW = "sdk eager"


def run_suite(
    checkpoint: str | Path,
    encoded: Sequence[bytes],
    *,
    backends: Sequence[Any] | str | None = None,
    device: str = "cpu",
    batch_sizes: Sequence[int] = (1, 8),
    input_size: tuple[int, int] | None = None,
    out_dir: str | Path = "runs/benchmark",
    references: Sequence[str] = (TORCHVISION_ROW, SDK_EAGER_ROW),
    peak: bool = True,
    **kwargs: Any,
) -> dict[str, Any]:
    """Benchmark ``checkpoint`` on every export target in ``backends`` and the eager references.

    ``backends``: ``backend[:precision]`` items (``sdk.benchmarks.targets.parse_targets``;
    default ``default_targets(device)``; ``[]``: the references only). ``kwargs`` go to ``benchmark_pipeline`` (warmup,
    iters, duration_s, dataset, dataset_images, images_label, progress, threads).
    Returns ``{"schema", "checkpoint", "device", "rows": [{"name", "backend", "precision",
    "status": "ok"|"skipped"|"failed"|"n/a", "reason"?, "calibration"?, "result"?}],
    "peak_reference", "cost", "load", "environment", ...}``.
    """
    from sdk.benchmarks.environment import LoadMonitor, environment
    from sdk.benchmarks.exporting import calibration_source, export_checkpoint, unavailable_reason
    from sdk.benchmarks.harness import achieved_throughput, benchmark_model
    from sdk.benchmarks.model_cost import checkpoint_cost
    from sdk.benchmarks.single import benchmark_torchvision
    from sdk.benchmarks.targets import default_targets, parse_targets
    from sdk.checkpoint import load_checkpoint

    if backends is None:
        targets = list(default_targets(device))
    else:  # an empty list: the references only
        targets = parse_targets(backends) if len(backends) else []
    load = LoadMonitor()
    meta = load_checkpoint(checkpoint).meta
    static = input_size or meta.preprocess.with_static_shape().static_shape
    cost = checkpoint_cost(checkpoint, tuple(static))
    rows: list[dict[str, Any]] = []
    calibration: dict[str, Any] = {}  # written once, on the first int8 row

    def attempt(row: dict[str, Any], fn: Callable[[], dict[str, Any]]) -> None:
        log.info("suite: %s", row["name"])
        try:
            row.update(status="ok", result=fn())
        except BackendUnavailableError as exc:  # e.g. an exporter not built into this installation
            row.update(status="skipped", reason=str(exc))
        except SDKError as exc:
            row.update(status="n/a" if row["name"] == TORCHVISION_ROW else "failed", reason=str(exc))
        except Exception as exc:  # one broken backend must not hide the others' numbers
            log.exception("suite: %s failed", row["name"])
            row.update(status="failed", reason=f"{type(exc).__name__}: {exc}")
        rows.append(row)
        load.sample()

    if TORCHVISION_ROW in references:
        attempt(_row(TORCHVISION_ROW, "torchvision eager"), lambda: benchmark_torchvision(
            checkpoint, encoded, device=device, batch_sizes=batch_sizes, **kwargs))
    if SDK_EAGER_ROW in references:
        attempt(_row(SDK_EAGER_ROW, "sdk eager"), lambda: benchmark_model(
            checkpoint, encoded, device=device, batch_sizes=batch_sizes, input_size=tuple(static), cost=cost,
            name=SDK_EAGER_ROW, **kwargs))
    for target in targets:
        row = _row(target.name, target.backend, target.precision)
        reason = unavailable_reason(target, device)
        if reason:
            rows.append({**row, "status": "skipped", "reason": reason})
            continue
        if target.precision == "int8":
            if not calibration:
                calibration.update(calibration_source(encoded, out_dir, dataset=kwargs.get("dataset"),
                                                      dataset_images=kwargs.get("dataset_images")))
            row["calibration"] = dict(calibration)

        def exported(target=target) -> dict[str, Any]:
            start = time.perf_counter()
            model_dir = export_checkpoint(
                checkpoint, target, Path(out_dir) / "models" / target.folder, input_size=tuple(static),
                max_batch=max(batch_sizes), device=device, calibration=calibration or None,
            )
            export_s = time.perf_counter() - start
            result = benchmark_model(model_dir, encoded, device=device, batch_sizes=batch_sizes, cost=cost,
                                     name=target.name, **kwargs)
            result["model"]["export_s"] = export_s
            return result

        attempt(row, exported)

    peak_reference = None
    if peak:
        from sdk.benchmarks.peak_flops import peak_throughput

        peak_reference = peak_throughput(device=device, threads=kwargs.get("threads"))
        load.sample()
        for row in rows:
            if row["status"] == "ok":
                row["result"]["achieved"] = achieved_throughput(row["result"], peak_reference)
    load_record = load.finish()
    return {
        "schema": SUITE_SCHEMA,
        "checkpoint": str(checkpoint),
        "model_name": meta.model_name,
        "device": device,
        "input_hw": list(static),
        "batch_sizes": list(batch_sizes),
        "targets": [t.item for t in targets],
        "dataset": str(kwargs["dataset"]) if kwargs.get("dataset") else None,
        "cost": cost,
        "peak_reference": peak_reference,
        "rows": rows,
        "load": load_record,
        "environment": environment(load=load_record),
    }


def _row(name: str, backend: str, precision: str = "fp32") -> dict[str, Any]:
    return {"name": name, "backend": backend, "precision": precision}
