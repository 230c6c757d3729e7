"""The stage timer and the harness on a fake pipeline (no model, no torch)."""

from __future__ import annotations

import time

import numpy as np
import pytest

from sdk.benchmarks.harness import benchmark_pipeline
from sdk.benchmarks.images import synthetic_images
from sdk.benchmarks.report import result_markdown
from sdk.benchmarks.timing import STAGES, latency_summary_ms, time_pipeline
from sdk.detections import Detections


class SleepyPipeline:
    """Sleeps a known time in each stage; counts calls."""

    name = "sleepy"
    device = "cpu"
    max_batch = 4

    def __init__(self, seconds=(0.001, 0.002, 0.004, 0.001)):
        self.seconds = dict(zip(STAGES, seconds))
        self.calls = 0

    def decode(self, encoded):
        time.sleep(self.seconds["decode"])
        return [np.zeros((4, 4, 3), np.uint8) for _ in encoded]

    def preprocess(self, images):
        time.sleep(self.seconds["preprocess"])
        return len(images)

    def infer(self, prepared):
        self.calls += 1
        time.sleep(self.seconds["inference"])
        return prepared

    def postprocess(self, raw, prepared):
        time.sleep(self.seconds["postprocess"])
        return [Detections.empty(["a"]) for _ in range(raw)]


def test_stages_are_timed_separately_and_add_up_to_end_to_end():
    pipeline = SleepyPipeline()
    timings = time_pipeline(pipeline, [b"x"], batch_size=3, warmup=2, iters=4, progress=False)
    assert pipeline.calls == 6  # warm-up runs but is not recorded
    assert timings.iterations == 4
    for name, slept in pipeline.seconds.items():
        assert (timings.stages[name] >= slept).all(), name
    total = sum(timings.stages.values())
    np.testing.assert_allclose(total, timings.end_to_end, rtol=1e-9)
    summary = timings.summary()
    assert summary["images_per_s"] == pytest.approx(3 / timings.end_to_end.mean())
    assert 0 < summary["pre_post_share"] < 1


def test_duration_mode_runs_until_the_time_is_up():
    timings = time_pipeline(SleepyPipeline(), [b"x"], batch_size=1, warmup=0, iters=None, duration_s=0.05, progress=False)
    assert timings.iterations >= 2
    assert timings.end_to_end.sum() >= 0.05 - 0.01


def test_latency_summary_percentiles():
    summary = latency_summary_ms(np.arange(1, 101) / 1000)
    assert summary["mean"] == pytest.approx(50.5)
    assert summary["p50"] == pytest.approx(50.5)
    assert summary["p99"] == pytest.approx(99.01)
    assert summary["min"] == 1 and summary["max"] == 100


def test_harness_skips_batches_above_the_models_maximum():
    result = benchmark_pipeline(
        SleepyPipeline(), synthetic_images(2, size=(32, 48)), batch_sizes=(1, 8), warmup=0, iters=2, progress=False
    )
    ok, skipped = result["batches"]
    assert ok["batch_size"] == 1 and ok["iterations"] == 2 and ok["peak_rss_mb"] > 0
    assert skipped == {"batch_size": 8, "skipped": skipped["skipped"]} and "maximum batch 4" in skipped["skipped"]
    markdown = result_markdown(result, command="sdk benchmark x")
    assert "skipped: batch 8" in markdown and "sdk benchmark x" in markdown


def test_bad_arguments():
    with pytest.raises(ValueError):
        time_pipeline(SleepyPipeline(), [], batch_size=1)
    with pytest.raises(ValueError):
        time_pipeline(SleepyPipeline(), [b"x"], batch_size=1, iters=None, duration_s=None)


def test_synthetic_images_decode_to_the_requested_size():
    from sdk.images import load_image

    images = synthetic_images(3, size=(40, 56), seed=1)
    assert len(images) == 3 and images == synthetic_images(3, size=(40, 56), seed=1)
    assert load_image(images[0]).shape == (40, 56, 3)
