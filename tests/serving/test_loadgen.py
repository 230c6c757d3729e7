"""The load generator against a live server (short windows; no timing assertions)."""

from __future__ import annotations

import csv

import pytest
from serving_support import MODEL_NAME, png_bytes, serve

from sdk.serving import run_load
from sdk.serving.loadgen import CSV_FIELDS, format_table, write_csv


def test_run_load_reports_each_level(model_dir, scenes, tmp_path):
    with serve(model_dir, max_queue_delay_us=500, token="t0k") as thread:
        results = run_load(
            thread.url,
            MODEL_NAME,
            concurrency_levels=(1, 4),
            duration_s=0.5,
            warmup_s=0.2,
            images=[png_bytes(s) for s in scenes],
            token="t0k",
            batch_size=2,
        )
        wrong_token = run_load(
            thread.url, MODEL_NAME, concurrency_levels=(2,), duration_s=0.3, warmup_s=0.0, images=scenes, token="bad"
        )
    assert [r["concurrency"] for r in results] == [1, 4]
    for row in results:
        assert set(row) == set(CSV_FIELDS)
        assert row["requests"] > 0 and row["errors"] == 0
        assert row["inferences_per_s"] == pytest.approx(row["requests_per_s"] * 2)
        assert 0 < row["latency_ms_p50"] <= row["latency_ms_p90"] <= row["latency_ms_p95"] <= row["latency_ms_p99"]
        assert row["server_compute_ms"] > 0
    (failed,) = wrong_token
    assert failed["requests"] == 0 and failed["errors"] > 0 and set(failed["error_codes"]) == {"UNAUTHENTICATED"}

    path = write_csv(results + wrong_token, tmp_path / "load.csv")
    rows = list(csv.DictReader(path.open()))
    assert [int(r["concurrency"]) for r in rows] == [1, 4, 2]
    assert rows[2]["error_codes"].startswith("UNAUTHENTICATED:")
    assert format_table(results).count("\n") == 2


def test_run_load_over_http(model_dir, scenes):
    """The same load generator against the REST side (``http://`` URL): same rows, same error names."""
    with serve(model_dir, max_queue_delay_us=500, token="t0k", http_port=0) as thread:
        (row,) = run_load(thread.http_url, MODEL_NAME, concurrency_levels=(3,), duration_s=0.5, warmup_s=0.2,
                          images=[png_bytes(s) for s in scenes], token="t0k")
        (denied,) = run_load(thread.http_url, MODEL_NAME, concurrency_levels=(1,), duration_s=0.3, warmup_s=0.0,
                             images=scenes, token="bad")
    assert row["requests"] > 0 and row["errors"] == 0 and row["server_compute_ms"] > 0
    assert 0 < row["latency_ms_p50"] <= row["latency_ms_p99"]
    assert denied["requests"] == 0 and set(denied["error_codes"]) == {"UNAUTHENTICATED"}


def test_sdk_benchmark_server_http(model_dir, tmp_path, capsys):
    """`sdk benchmark server http://...` measures the REST path of a live server."""
    from sdk.cli.main import main

    with serve(model_dir, http_port=0) as thread:
        code = main(["benchmark", "server", thread.http_url, "--model", MODEL_NAME, "--concurrency", "2",
                     "--duration", "0.4", "--csv", str(tmp_path / "http.csv")])
    assert code == 0
    (row,) = list(csv.DictReader((tmp_path / "http.csv").open()))
    assert int(row["requests"]) > 0 and int(row["errors"]) == 0
    assert "infer/s" in capsys.readouterr().out
