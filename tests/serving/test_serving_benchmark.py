"""`python -m sdk.benchmarks.serving_suite`: two `sdk serve` processes measured by the load generator."""

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
                               "--concurrency", "1,3", "--duration", "0.6", "--warmup", "0.2"])
    assert code == 0
    result = json.loads((tmp_path / "serving.json").read_text())
    assert result["schema"] == "sdk.benchmark.serving/1" and MODEL_NAME in result["model_dir"]
    assert list(result["settings"]) == list(TWO_SETTINGS)
    for setting in result["settings"].values():
        assert [r["concurrency"] for r in setting["rows"]] == [1, 3]
        for row in setting["rows"]:
            assert row["requests"] > 0 and row["errors"] == 0
            assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
    assert result["speedup"]["max_batch_size=1"] == 1.0 and result["speedup"]["dynamic"] > 0
    md = (tmp_path / "serving.md").read_text()
    assert "python -m sdk.benchmarks.serving_suite" in md and "| dynamic | 3 |" in md
