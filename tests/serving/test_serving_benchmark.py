"""`python -m sdk.benchmarks.serving_suite`: two `sdk serve` processes measured over gRPC and HTTP by the load generator."""

from __future__ import annotations

import json

from serving_support import MODEL_NAME, png_bytes

from sdk.benchmarks import serving_suite

TWO_SETTINGS = {
    "max_batch_size=1": ("--max-batch-size", "1"),
    "dynamic": ("--max-batch-size", "8", "--max-queue-delay-us", "1000"),
}


def test_serving_suite_measures_each_setting_and_writes_the_table(model_dir, scenes, tmp_path, monkeypatch):
    monkeypatch.setattr(serving_suite, "SETTINGS", TWO_SETTINGS)
    images = [png_bytes(s) for s in scenes]
    monkeypatch.setattr("sdk.benchmarks.images.synthetic_images", lambda count=8, **_: images)
    code = serving_suite.main([str(model_dir), "--out", str(tmp_path), "--stem", "serving",
                               "--concurrency", "1,3", "--duration", "0.4", "--warmup", "0.1"])
    assert code == 0
    result = json.loads((tmp_path / "serving.json").read_text())
    assert result["schema"] == "sdk.benchmark.serving/2" and MODEL_NAME in result["model_dir"]
    assert list(result["settings"]) == list(TWO_SETTINGS) and result["protocols"] == ["grpc", "http"]
    for setting in result["settings"].values():
        assert [(r["protocol"], r["concurrency"]) for r in setting["rows"]] == [
            ("grpc", 1), ("grpc", 3), ("http", 1), ("http", 3)]
        for row in setting["rows"]:
            assert row["requests"] > 0 and row["errors"] == 0
            assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
    assert result["speedup"]["max_batch_size=1"] == 1.0 and result["speedup"]["dynamic"] > 0
    assert set(result["http_over_grpc"]) == set(TWO_SETTINGS) and all(v > 0 for v in result["http_over_grpc"].values())
    md = (tmp_path / "serving.md").read_text()
    assert "python -m sdk.benchmarks.serving_suite" in md
    assert "| dynamic | grpc | 3 |" in md and "| dynamic | http | 3 |" in md and "HTTP (KServe v2 REST" in md
