"""End to end on the GPU: ``sdk benchmark suite`` rows per model, one row at a time.

For each model (the quickstart's trained model with its validation set for mAP, then
RetinaNet R50 and Faster R-CNN R50 with seeded random weights at 800x1088): torchvision
eager fp32 and SDK eager fp32 (``sdk.benchmarks.backend_suite``), SDK eager under
``torch.autocast`` (AMP: float16 on CUDA; bfloat16 in the CPU dry run), then each export
target (AOTInductor fp16 and fp32 on CUDA). Rows are yielded as they finish, so the
caller writes each one before the next export starts; speed-ups are against the
torchvision row of the same model and batch 1.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

AMP_ROW = "sdk eager amp"


@dataclass(frozen=True)
class E2EModel:
    """One model of the end-to-end step.

    Attributes:
        label: name in the tables; model_name: registry name (for random weights).
        checkpoint: trained checkpoint to use when it exists, else seeded random weights.
        dataset: COCO annotation file for mAP (used with a trained checkpoint only).
        input_size: static (H, W) network input; None = the checkpoint's.
    """

    label: str
    model_name: str
    checkpoint: Path | None = None
    dataset: Path | None = None
    input_size: tuple[int, int] | None = None


def gpu_models(quickstart_dir: Path) -> list[E2EModel]:
    """The issue's three models: the quickstart's, RetinaNet R50, Faster R-CNN R50."""
    return [
        E2EModel("quickstart", "rtmdet_nano", quickstart_dir / "train" / "best.pt",
                 quickstart_dir / "data" / "annotations" / "val.json"),
        E2EModel("retinanet_r50", "retinanet_resnet50_fpn", input_size=(800, 1088)),
        E2EModel("fasterrcnn_r50", "fasterrcnn_resnet50_fpn", input_size=(800, 1088)),
    ]


def dry_run_models() -> list[E2EModel]:
    return [E2EModel("fcos_tiny (dry run)", "fcos_tiny", input_size=(128, 128))]


def resolve_checkpoint(model: E2EModel, work_dir: Path) -> tuple[Path, Path | None, str]:
    """(checkpoint, dataset or None, weights description), writing random weights when needed."""
    from sdk.benchmarks.committed_suites import random_checkpoint

    if model.checkpoint is not None and model.checkpoint.is_file():
        dataset = model.dataset if model.dataset is not None and model.dataset.is_file() else None
        return model.checkpoint, dataset, "trained"
    path = work_dir / "checkpoints" / f"{model.model_name}_random_seed0.pt"
    if not path.is_file():
        random_checkpoint(model.model_name, path, seed=0)
    return path, None, "random, seed 0"


def model_rows(
    model: E2EModel, *, device: str, targets: list[str], batch_sizes: tuple[int, ...], iters: int, warmup: int,
    work_dir: Path, deadline: float,
) -> Iterator[dict[str, Any]]:
    """Rows of ``model`` (summary dicts of ``sdk.benchmarks.suite_report.summary_rows``
    plus ``model`` and ``weights``), each yielded when measured; rows that would start
    past ``deadline`` (``time.monotonic()``) are yielded as skipped."""
    import torch

    from sdk.benchmarks.images import synthetic_images
    from sdk.benchmarks.backend_suite import SDK_EAGER_ROW, TORCHVISION_ROW, run_suite
    from sdk.benchmarks.suite_report import summary_rows

    checkpoint, dataset, weights = resolve_checkpoint(model, work_dir)
    encoded = synthetic_images(8)
    common = dict(device=device, batch_sizes=batch_sizes, input_size=model.input_size, iters=iters, warmup=warmup,
                  dataset=dataset, out_dir=work_dir / model.label.split()[0], peak=False, progress=False)
    reference: dict[str, Any] | None = None

    def rows_of(suite: dict[str, Any], *, with_reference: bool = False) -> list[dict[str, Any]]:
        # speed-ups need the reference row (torchvision eager, else sdk eager) in the same suite
        extra = [reference] if reference and not with_reference else []
        out = summary_rows({**suite, "rows": extra + suite["rows"]})[len(extra):]
        return [{"model": model.label, "weights": weights, **r} for r in out]

    plan: list[tuple[str, Any]] = [("references", None), ("amp", None)] + [("target", t) for t in targets]
    for kind, target in plan:
        name = {"references": f"{TORCHVISION_ROW} + {SDK_EAGER_ROW}", "amp": AMP_ROW}.get(kind, target)
        if time.monotonic() > deadline:
            yield {"model": model.label, "name": name, "precision": "", "status": "skipped",
                   "reason": "out of the run's time budget"}
            continue
        log.info("end to end: %s %s", model.label, name)
        if kind == "references":
            suite = run_suite(checkpoint, encoded, backends=[], **common)
            by_name = {r["name"]: r for r in suite["rows"]}
            tv = by_name.get(TORCHVISION_ROW)
            reference = tv if tv and tv["status"] == "ok" else by_name.get(SDK_EAGER_ROW)
            yield from rows_of(suite, with_reference=True)
        elif kind == "amp":
            amp_dtype = torch.float16 if device.startswith("cuda") else torch.bfloat16
            with torch.autocast(device.split(":")[0], dtype=amp_dtype):
                suite = run_suite(checkpoint, encoded, backends=[], references=(SDK_EAGER_ROW,), **common)
            for row in suite["rows"]:
                row.update(name=AMP_ROW, precision=f"amp {str(amp_dtype).split('.')[-1]}")
            yield from rows_of(suite)
        else:
            yield from rows_of(run_suite(checkpoint, encoded, backends=[target], references=(), **common))
