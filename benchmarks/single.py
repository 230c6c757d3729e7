"""``benchmark_target``: what ``sdk benchmark model MODEL [--backend B]`` runs.

MODEL is a model_dir (runs on its own backend) or a ``.pt`` checkpoint, which runs on
eager PyTorch (``torch``, the default), on torchvision's own eager model with the same
weights (``torchvision``), or is exported first to a temporary model_dir for an export
target ``backend[:precision]`` (``onnxruntime``, ``openvino:bf16``, ``onnxruntime:int8``
calibrated on the benchmark images or the ``dataset``, ...).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

from sdk.errors import ConfigError

EAGER_BACKENDS = ("torch", "torchvision")


def benchmark_target(
    model: str | Path,
    encoded: Sequence[bytes],
    *,
    backend: str | None = None,
    device: str = "cpu",
    batch_sizes: Sequence[int] = (1,),
    input_size: tuple[int, int] | None = None,
    peak: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """One ``sdk.benchmarks.harness`` result for ``model`` on ``backend``; ``kwargs`` go
    to ``benchmark_pipeline`` (warmup, iters, duration_s, dataset, images_label, ...).
    ``peak`` adds the per-precision dense-kernel reference (``sdk.benchmarks.peak_flops``)
    and the fraction of the model's own precision's reference achieved."""
    from sdk.benchmarks.harness import achieved_throughput, benchmark_model

    path = Path(model)
    if path.is_dir() or path.name == "manifest.json":
        model_dir = path if path.is_dir() else path.parent
        exported_for = _manifest(model_dir).backend
        if backend not in (None, exported_for):
            raise ConfigError(f"{model_dir} is an {exported_for} model_dir; it cannot run on {backend!r} (drop --backend)")
        result = benchmark_model(model_dir, encoded, device=device, batch_sizes=batch_sizes, input_size=input_size, **kwargs)
    elif backend in (None, "torch"):
        result = benchmark_model(path, encoded, device=device, batch_sizes=batch_sizes, input_size=input_size, **kwargs)
    elif backend == "torchvision":
        result = benchmark_torchvision(path, encoded, device=device, batch_sizes=batch_sizes, **kwargs)
    else:
        from sdk.benchmarks.exporting import calibration_source, export_checkpoint
        from sdk.benchmarks.model_cost import checkpoint_cost
        from sdk.benchmarks.targets import parse_target

        target = parse_target(backend)
        with tempfile.TemporaryDirectory(prefix="sdk-benchmark-") as tmp:
            calibration = calibration_source(
                encoded, tmp, dataset=kwargs.get("dataset"), dataset_images=kwargs.get("dataset_images")
            ) if target.precision == "int8" else None
            model_dir = export_checkpoint(
                path, target, Path(tmp) / target.folder, input_size=input_size, max_batch=max(batch_sizes),
                device=device, calibration=calibration,
            )
            shape = _static_shape(model_dir)
            cost = checkpoint_cost(path, shape) if shape else None
            result = benchmark_model(model_dir, encoded, device=device, batch_sizes=batch_sizes, cost=cost, **kwargs)
            result["model"]["exported_from"] = str(path)
    if peak:
        from sdk.benchmarks.peak_flops import peak_throughput

        result["peak_reference"] = peak_throughput(device=device, threads=kwargs.get("threads"))
        result["achieved"] = achieved_throughput(result, result["peak_reference"])
    return result


def benchmark_torchvision(
    checkpoint: str | Path,
    encoded: Sequence[bytes],
    *,
    device: str = "cpu",
    batch_sizes: Sequence[int] = (1,),
    cost: dict[str, Any] | None = None,
    threads: int | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """``benchmark_pipeline`` of torchvision's eager twin of ``checkpoint``
    (``sdk.benchmarks.torchvision_reference``); ``ConfigError`` when there is none."""
    import torch

    from sdk.benchmarks.harness import benchmark_pipeline
    from sdk.benchmarks.model_cost import count_cost, model_size_mb
    from sdk.benchmarks.pipelines import set_torch_threads
    from sdk.benchmarks.torchvision_reference import TorchvisionPipeline

    pipeline = TorchvisionPipeline(checkpoint, device=device)
    if threads:
        set_torch_threads(threads)
    with torch.inference_mode():  # the size torchvision's transform gives the first image
        images = pipeline.preprocess(pipeline.decode(encoded[:1]))
        input_hw = tuple(int(v) for v in pipeline.model.transform(images)[0].tensors.shape[-2:])
    if cost is None:
        cost = {**count_cost(_TorchvisionNetwork(pipeline.model), input_hw), "source": "torchvision model at its input size"}
    info = {
        "path": str(checkpoint),
        "kind": "checkpoint",
        "model_name": pipeline.builder_name,
        "backend": "torchvision",
        "precision": "fp32",
        "input_hw": list(input_hw),
        "size_mb": model_size_mb(checkpoint),
        "parameters": cost.get("parameters"),
        "gflops": cost.get("gflops"),
        "gflops_source": cost.get("source"),
    }
    return benchmark_pipeline(pipeline, encoded, batch_sizes=batch_sizes, model_info=info, threads=threads, **kwargs)


class _TorchvisionNetwork:
    """torchvision's detector behind ``count_cost``'s calling convention: a float
    [B, 3, H, W] batch (values 0-1) at the size its transform already produces."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def parameters(self):
        return self.model.parameters()

    def eval(self):
        return self

    def __call__(self, x):
        import torch

        # min_size/max_size already hold for x, so the transform leaves its size alone.
        return self.model(list(torch.unbind(x.clamp(0, 1))))


def _manifest(model_dir: Path):
    from sdk.manifest import load_model_dir

    return load_model_dir(model_dir, verify_files=False).manifest


def _static_shape(model_dir: Path) -> tuple[int, int] | None:
    return _manifest(model_dir).preprocess.static_shape
