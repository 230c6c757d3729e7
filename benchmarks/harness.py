"""``benchmark_pipeline``: latency, throughput, memory and accuracy of one pipeline.

The result is one JSON-ready dict (schema ``RESULT_SCHEMA``)::

    {"schema", "name", "model": {path, kind, model_name, backend, precision, input_hw,
                                 size_mb, parameters, gflops, gflops_source},
     "device", "settings": {warmup, iters, duration_s, batch_sizes, images},
     "batches": [{batch_size, iterations, stages_ms: {decode|preprocess|inference|
                  postprocess: {mean, p50, p90, p99, min, max}}, end_to_end_ms: {...},
                  ms_per_image, images_per_s, inference_images_per_s, pre_post_share,
                  peak_rss_mb, peak_rss_scope, peak_gpu_allocated_mb}
                 | {batch_size, skipped: reason}],
     "accuracy": {bbox_mAP, ...} | None, "environment": {...}}

Latencies are per batch (ms); ``ms_per_image`` = end-to-end mean / batch size.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from sdk.benchmarks.environment import LoadMonitor, PeakMemory, environment
from sdk.benchmarks.timing import Pipeline, time_pipeline

log = logging.getLogger(__name__)

RESULT_SCHEMA = "sdk.benchmark/1"


def benchmark_pipeline(
    pipeline: Pipeline,
    encoded: Sequence[bytes],
    *,
    batch_sizes: Sequence[int] = (1,),
    warmup: int = 3,
    iters: int | None = 20,
    duration_s: float | None = None,
    model_info: dict[str, Any] | None = None,
    images_label: str = "",
    dataset: str | Path | None = None,
    dataset_images: str | Path | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> dict[str, Any]:
    """Time ``pipeline`` at each batch size (see ``sdk.benchmarks.timing``), record peak
    memory per batch size and, with ``dataset`` (a COCO annotation file), its bbox mAP.
    ``threads`` is only recorded (the pipeline was built with it)."""
    batches = []
    load = LoadMonitor()
    for batch_size in batch_sizes:
        if batch_size > pipeline.max_batch:
            reason = f"batch {batch_size} > the model's maximum batch {pipeline.max_batch} (re-export with --max-batch)"
            log.warning("%s: skipping %s", pipeline.name, reason)
            batches.append({"batch_size": batch_size, "skipped": reason})
            continue
        with PeakMemory(pipeline.device) as memory:
            timings = time_pipeline(
                pipeline, encoded, batch_size=batch_size, warmup=warmup, iters=iters, duration_s=duration_s,
                progress=progress,
            )
        batches.append({**timings.summary(), **memory.to_dict()})
        load.sample()
    accuracy = None
    if dataset is not None:
        eval_batch = min(max(batch_sizes), pipeline.max_batch)
        accuracy = evaluate_pipeline(pipeline, dataset, dataset_images, batch_size=eval_batch, progress=progress)
    return {
        "schema": RESULT_SCHEMA,
        "name": pipeline.name,
        "model": dict(model_info or {}),
        "device": pipeline.device,
        "settings": {
            "warmup": warmup,
            "iters": iters if duration_s is None else None,
            "duration_s": duration_s,
            "batch_sizes": list(batch_sizes),
            "threads": threads,
            "images": images_label,
        },
        "batches": batches,
        "accuracy": accuracy,
        "environment": environment(load=load.finish()),
    }


def default_images_dir(ann_file: str | Path) -> Path:
    """``root/images`` for ``root/annotations/<split>.json`` (the ``sdk data`` layout)."""
    return Path(ann_file).resolve().parent.parent / "images"


def evaluate_pipeline(
    pipeline: Any,
    ann_file: str | Path,
    images_dir: str | Path | None = None,
    *,
    batch_size: int = 1,
    progress: bool = True,
) -> dict[str, float]:
    """COCO bbox metrics (``sdk.evaluation.evaluate_coco``) of ``pipeline.detect`` over
    the images of ``ann_file`` (file names relative to ``images_dir``)."""
    from tqdm import tqdm

    from sdk.data.coco import CocoDetection
    from sdk.evaluation.coco_eval import evaluate_coco
    from sdk.preprocess import iter_chunks

    dataset = CocoDetection(str(ann_file), str(images_dir or default_images_dir(ann_file)))
    detections = {}
    with tqdm(total=len(dataset), desc=f"{pipeline.name} mAP", unit="img", disable=not progress, leave=False) as bar:
        for chunk in iter_chunks(range(len(dataset)), batch_size):
            items = [dataset[i] for i in chunk]
            for (_, target), dets in zip(items, pipeline.detect([image for image, _ in items])):
                detections[int(target["image_id"])] = dets
            bar.update(len(items))
    metrics = evaluate_coco(str(ann_file), detections)
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}


def benchmark_model(
    model: str | Path,
    encoded: Sequence[bytes],
    *,
    device: str = "cpu",
    batch_sizes: Sequence[int] = (1,),
    input_size: tuple[int, int] | None = None,
    cost: dict[str, Any] | None = None,
    name: str | None = None,
    threads: int | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """``benchmark_pipeline`` of a model_dir or ``.pt`` checkpoint through ``sdk.Detector``,
    with the model's description (size, parameters, GFLOPs) filled in. ``cost``
    (``sdk.benchmarks.model_cost``) is counted here unless given (e.g. the suite counts
    it once on the source checkpoint); ``kwargs`` go to ``benchmark_pipeline``."""
    from sdk.benchmarks.model_cost import count_cost, model_dir_cost, model_size_mb
    from sdk.benchmarks.pipelines import DetectorPipeline

    pipeline = DetectorPipeline(
        model, device=device, max_batch=max(batch_sizes), input_size=input_size, name=name, threads=threads
    )
    detector = pipeline.detector
    input_hw = detector.preprocess.static_shape or _first_input_hw(pipeline, encoded)
    if cost is None and detector.manifest is None:
        cost = {**count_cost(detector.backend.model, tuple(input_hw)), "source": "checkpoint"}
    manifest = detector.manifest
    info = {
        "path": str(model),
        "kind": "checkpoint" if manifest is None else "model_dir",
        "model_name": manifest.model_name if manifest else _checkpoint_model_name(model),
        "backend": detector.backend_name,
        "precision": manifest.precision if manifest else "fp32",
        "input_hw": list(input_hw),
        "size_mb": model_size_mb(model),
    }
    result = benchmark_pipeline(pipeline, encoded, batch_sizes=batch_sizes, model_info=info, threads=threads, **kwargs)
    if cost is None:  # counted after timing: it imports torch, which would inflate an ONNX Runtime run's RSS
        cost = model_dir_cost(detector.model_path) or {}
    result["model"].update(parameters=cost.get("parameters"), gflops=cost.get("gflops"), gflops_source=cost.get("source"))
    return result


def _first_input_hw(pipeline: Any, encoded: Sequence[bytes]) -> tuple[int, int]:
    """Network input (H, W) of the first image (keep_ratio records without a canvas)."""
    batch, _ = pipeline.preprocess(pipeline.decode(encoded[:1]))
    return int(batch.shape[2]), int(batch.shape[3])


def _checkpoint_model_name(path: str | Path) -> str:
    from sdk.checkpoint import load_checkpoint

    return load_checkpoint(path).meta.model_name


def achieved_throughput(result: dict[str, Any], peak: dict[str, Any]) -> dict[str, Any] | None:
    """Model GFLOPs x best images/s, and its fraction of the reference of the result's own
    precision (``sdk.benchmarks.peak_flops.reference_gflops``: fp32 vs the fp32 kernels,
    bf16/fp16 vs the bf16 ones, int8 vs the int8 ones); ``None`` without a FLOP count or a
    timed batch. ``fraction_of_peak`` is ``None`` when that precision was not measured."""
    from sdk.benchmarks.peak_flops import CLASS_LABEL, REFERENCE_CLASS, reference_gflops

    gflops = result["model"].get("gflops")
    timed = [b for b in result["batches"] if "skipped" not in b]
    if not gflops or not timed:
        return None
    best = max(timed, key=lambda b: b["images_per_s"])
    precision = result["model"].get("precision") or "fp32"
    ref = reference_gflops(peak, device=result["device"], precision=precision)
    achieved = gflops * best["images_per_s"]
    return {
        "batch_size": best["batch_size"],
        "gflops_per_s": achieved,
        "precision": precision,
        "reference_class": CLASS_LABEL.get(REFERENCE_CLASS.get(precision, ""), precision),
        "reference": ref[0] if ref else None,
        "reference_gflops_per_s": ref[1] if ref else None,
        "fraction_of_peak": achieved / ref[1] if ref else None,
    }
