"""Stage-by-stage timing of a detection pipeline: decode, preprocess, inference, postprocess.

A ``Pipeline`` splits "encoded images in, ``Detections`` out" into the four stages the
SDK has. ``time_pipeline`` runs it on one batch size: warm-up iterations first (not
recorded: first calls allocate, compile, tune), then ``iters`` iterations or as many
as fit in ``duration_s``. Each iteration reads one monotonic clock five times (before
and after every stage); the device is synchronized before each read, so an
asynchronous backend cannot push its work into the next stage. End to end is the first
to the last read, so per iteration the four stages add up to it exactly and their
means add up to its mean (percentiles do not add).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np

STAGES = ("decode", "preprocess", "inference", "postprocess")
PERCENTILES = (50, 90, 99)


class Pipeline(Protocol):
    """One model behind the four stages.

    Attributes:
        name: what the tables call it (``"onnxruntime"``, ``"torchvision eager"``).
        max_batch: the largest batch ``preprocess`` accepts.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    """

    name: str
    max_batch: int
    device: str

    def decode(self, encoded: Sequence[bytes]) -> list[np.ndarray]:
        """Encoded image files -> (H, W, 3) uint8 RGB arrays."""
        ...

    def preprocess(self, images: list[np.ndarray]) -> Any:
        """RGB arrays -> whatever ``infer`` takes (plus what ``postprocess`` needs)."""
        ...

    def infer(self, prepared: Any) -> Any:
        """Run the network; the raw outputs."""
        ...

    def postprocess(self, raw: Any, prepared: Any) -> list:
        """Raw outputs -> one ``sdk.Detections`` per image, original-image pixels."""
        ...


@dataclass(frozen=True)
class Timings:
    """Per-iteration seconds: ``stages[name]`` and ``end_to_end``, each of length ``iterations``."""

    batch_size: int
    stages: dict[str, np.ndarray]
    end_to_end: np.ndarray

    @property
    def iterations(self) -> int:
        return int(self.end_to_end.size)

    def summary(self) -> dict[str, Any]:
        """JSON-ready record: latencies in ms per batch, throughput in images/s."""
        e2e_mean = float(self.end_to_end.mean())
        return {
            "batch_size": self.batch_size,
            "iterations": self.iterations,
            "stages_ms": {name: latency_summary_ms(values) for name, values in self.stages.items()},
            "end_to_end_ms": latency_summary_ms(self.end_to_end),
            "ms_per_image": 1e3 * e2e_mean / self.batch_size,
            "images_per_s": self.batch_size / e2e_mean,
            "inference_images_per_s": self.batch_size / float(self.stages["inference"].mean()),
            "pre_post_share": float(
                (self.stages["decode"] + self.stages["preprocess"] + self.stages["postprocess"]).sum()
                / self.end_to_end.sum()
            ),
        }


def latency_summary_ms(seconds: np.ndarray) -> dict[str, float]:
    """mean, p50, p90, p99, min, max of ``seconds`` in milliseconds."""
    ms = np.asarray(seconds, np.float64) * 1e3
    out = {"mean": float(ms.mean())}
    out.update({f"p{q}": float(np.percentile(ms, q)) for q in PERCENTILES})
    out.update({"min": float(ms.min()), "max": float(ms.max())})
    return out


def synchronize(device: str) -> None:
    """Wait for queued GPU work when torch drives a CUDA device (no-op on CPU and when
    torch was never imported: the ONNX Runtime and TensorRT backends return host arrays)."""
    torch = sys.modules.get("torch")
    if torch is not None and str(device).startswith("cuda") and torch.cuda.is_available():
        torch.cuda.synchronize(device)


def time_pipeline(
    pipeline: Pipeline,
    encoded: Sequence[bytes],
    *,
    batch_size: int,
    warmup: int = 3,
    iters: int | None = 20,
    duration_s: float | None = None,
    progress: bool = True,
) -> Timings:
    """Time ``pipeline`` on batches of ``batch_size`` images cycled from ``encoded``.

    Runs ``warmup`` untimed iterations, then ``iters`` timed ones, or (when
    ``duration_s`` is given) timed ones until ``duration_s`` seconds have passed (at
    least one).
    """
    if not encoded:
        raise ValueError("time_pipeline needs at least one image")
    if batch_size < 1 or warmup < 0 or (iters is None and duration_s is None):
        raise ValueError("batch_size >= 1, warmup >= 0 and one of iters / duration_s are required")
    from tqdm import tqdm

    def batch(i: int) -> list[bytes]:
        return [encoded[(i * batch_size + j) % len(encoded)] for j in range(batch_size)]

    sync = lambda: synchronize(pipeline.device)  # noqa: E731
    for i in range(warmup):
        _run_once(pipeline, batch(i), sync)
    rows: list[list[float]] = []
    total = iters if duration_s is None else None
    desc = f"{pipeline.name} b{batch_size}"
    with tqdm(total=total, desc=desc, unit="it", disable=not progress, leave=False, dynamic_ncols=True) as bar:
        start = time.perf_counter()
        while True:
            rows.append(_run_once(pipeline, batch(warmup + len(rows)), sync))
            bar.update(1)
            if duration_s is None and len(rows) >= iters:
                break
            if duration_s is not None and time.perf_counter() - start >= duration_s:
                break
    clocks = np.asarray(rows, np.float64)  # [iterations, 5]
    stages = {name: clocks[:, k + 1] - clocks[:, k] for k, name in enumerate(STAGES)}
    return Timings(batch_size=batch_size, stages=stages, end_to_end=clocks[:, -1] - clocks[:, 0])


def _run_once(pipeline: Pipeline, encoded: list[bytes], sync) -> list[float]:
    """One iteration; the five clock readings (device synchronized before each)."""
    clock = time.perf_counter
    sync()
    t0 = clock()
    images = pipeline.decode(encoded)
    sync()
    t1 = clock()
    prepared = pipeline.preprocess(images)
    sync()
    t2 = clock()
    raw = pipeline.infer(prepared)
    sync()
    t3 = clock()
    pipeline.postprocess(raw, prepared)
    sync()
    t4 = clock()
    return [t0, t1, t2, t3, t4]
