"""``sdk benchmark`` end to end on a tiny random-weight checkpoint and its ONNX export.

One suite run (export to ONNX Runtime + the eager references) is shared by the tests
of this module; the exported model_dir it leaves is then benchmarked on its own.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from sdk.benchmarks.timing import STAGES  # noqa: E402
from sdk.cli.main import main  # noqa: E402

FAST = ["--iters", "2", "--warmup", "1", "--threads", "1", "--no-progress"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A seed-0 random-weight retinanet_tiny checkpoint, built with one torch thread
    (more threads than free cores make a loaded CI machine erratic)."""
    from sdk.benchmarks.committed_suites import random_checkpoint

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return random_checkpoint("retinanet_tiny", tmp_path_factory.mktemp("ckpt") / "retinanet_tiny.pt", seed=0)
    finally:
        torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def small_peak_kernels():
    """Shrink the physical-reference kernels so a suite's peak measurement takes
    milliseconds (the full sizes are for real runs)."""
    from sdk.benchmarks import peak_kernels

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(peak_kernels, "MATMUL_N", 128)
        mp.setattr(peak_kernels, "CONV_C", 16)
        mp.setattr(peak_kernels, "CONV_HW", 16)
        yield


@pytest.fixture(scope="module")
def suite_dir(tiny_checkpoint, tmp_path_factory, small_peak_kernels):
    out = tmp_path_factory.mktemp("suite")
    code = main(["benchmark", "suite", str(tiny_checkpoint), "--backends", "onnxruntime", "tensorrt:fp16",
                 "--batch", "1,2", "--out", str(out), *FAST])
    assert code == 0
    return out


def check_result_schema(result: dict, *, batch_sizes: list[int]) -> None:
    assert result["schema"] == "sdk.benchmark/1"
    assert {"path", "kind", "model_name", "backend", "precision", "input_hw", "size_mb", "parameters", "gflops"} <= set(
        result["model"]
    )
    assert result["model"]["size_mb"] > 0 and result["model"]["parameters"] > 0 and result["model"]["gflops"] > 0
    assert {"cpu_model", "cpu_flags", "cpu_cores_logical", "cpu_cores_physical", "libraries", "date_utc",
            "load_average_1m", "load"} <= set(result["environment"])
    assert [b["batch_size"] for b in result["batches"]] == batch_sizes
    for batch in result["batches"]:
        assert batch["iterations"] == 2
        stage_means = [batch["stages_ms"][s]["mean"] for s in STAGES]
        assert all(m > 0 for m in stage_means)
        for summary in [*batch["stages_ms"].values(), batch["end_to_end_ms"]]:
            assert summary["min"] <= summary["p50"] <= summary["p90"] <= summary["p99"] <= summary["max"]
        e2e = batch["end_to_end_ms"]["mean"]
        assert sum(stage_means) <= e2e * (1 + 1e-6)
        assert sum(stage_means) == pytest.approx(e2e, rel=0.01)
        assert batch["images_per_s"] == pytest.approx(1e3 * batch["batch_size"] / e2e)
        assert batch["peak_rss_mb"] > 0


def test_checkpoint_benchmark_writes_json_markdown_and_plot(tiny_checkpoint, tmp_path, capsys, small_peak_kernels):
    paths = {k: tmp_path / f"out.{k}" for k in ("json", "md", "png")}
    code = main(["benchmark", "model", str(tiny_checkpoint), "--batch", "1,2", "--json", str(paths["json"]),
                 "--markdown", str(paths["md"]), "--plot", str(paths["png"]), "--peak", *FAST])
    assert code == 0
    result = json.loads(paths["json"].read_text())
    check_result_schema(result, batch_sizes=[1, 2])
    assert result["model"]["kind"] == "checkpoint" and result["model"]["backend"] == "torch"
    assert result["model"]["input_hw"] == [320, 320]
    assert result["settings"]["threads"] == 1
    assert result["achieved"]["fraction_of_peak"] > 0 and result["achieved"]["reference_class"] == "fp32"
    assert result["achieved"]["reference"] == result["peak_reference"]["references"]["fp32"]["kernel"]
    markdown = paths["md"].read_text()
    assert "sdk benchmark" in markdown and "| batch |" in markdown and "Physical reference" in markdown
    assert paths["png"].read_bytes()[:8] == PNG_MAGIC
    assert "| batch |" in capsys.readouterr().out


def test_suite_runs_onnxruntime_and_reports_missing_backends(suite_dir):
    suite = json.loads((suite_dir / "suite.json").read_text())
    rows = {row["name"]: row for row in suite["rows"]}
    assert list(rows) == ["torchvision eager", "sdk eager", "onnxruntime fp32", "tensorrt fp16"]
    assert rows["torchvision eager"]["status"] == "n/a" and "no builder" in rows["torchvision eager"]["reason"]
    assert rows["sdk eager"]["status"] == "ok" and rows["onnxruntime fp32"]["status"] == "ok"
    assert rows["tensorrt fp16"]["status"] == "skipped" and rows["tensorrt fp16"]["reason"]
    assert (rows["tensorrt fp16"]["backend"], rows["tensorrt fp16"]["precision"]) == ("tensorrt", "fp16")
    check_result_schema(rows["onnxruntime fp32"]["result"], batch_sizes=[1, 2])
    # the FLOP count is taken once on the checkpoint and shared by its export
    assert rows["onnxruntime fp32"]["result"]["model"]["gflops"] == suite["cost"]["gflops"]
    assert rows["onnxruntime fp32"]["result"]["achieved"]["reference_class"] == "fp32"
    assert {"before", "after", "max_1m", "busy"} <= set(suite["load"]) and suite["environment"]["cpu_model"]
    assert suite["written"]["stem"] == "suite" and not suite["written"]["refused"]  # nothing existed to refuse
    assert [r["name"] for r in suite["summary"]] == list(rows)
    table = (suite_dir / "suite.md").read_text()
    assert "| onnxruntime | fp32 | ok |" in table and "| tensorrt | fp16 | skipped:" in table
    assert "speed-up vs sdk eager" in table and "bbox mAP" not in table and "| img/s b2 |" in table
    assert "Physical reference per precision" in table and "CPU inference flags" in table
    assert (suite_dir / "suite_latency.png").read_bytes()[:8] == PNG_MAGIC
    assert (suite_dir / "models" / "onnxruntime_fp32" / "manifest.json").is_file()


def test_model_dir_benchmark_with_map(suite_dir, tmp_path):
    from sdk.data.synthetic import generate_synthetic_coco

    data = generate_synthetic_coco(tmp_path / "data", num_train=0, num_val=2, image_size=96, seed=0, progress=False)
    out = tmp_path / "r.json"
    code = main(["benchmark", "model", str(suite_dir / "models" / "onnxruntime_fp32"), "--dataset", str(data.val_json),
                 "--json", str(out), *FAST])
    assert code == 0
    result = json.loads(out.read_text())
    check_result_schema(result, batch_sizes=[1])
    assert result["model"]["kind"] == "model_dir" and result["model"]["backend"] == "onnxruntime"
    assert result["model"]["gflops_source"].startswith("source checkpoint")
    assert 0 <= result["accuracy"]["bbox_mAP"] <= 1


def test_model_dir_runs_only_on_its_own_backend(suite_dir, capsys):
    assert main(["benchmark", "model", str(suite_dir / "models" / "onnxruntime_fp32"), "--backend", "aoti", *FAST]) == 2
    assert "onnxruntime model_dir; it cannot run on 'aoti'" in capsys.readouterr().err


def test_server_mode_delegates_to_the_load_generator(monkeypatch, tmp_path, capsys):
    import sdk.serving.loadgen as loadgen

    calls = {}

    def fake_run_load(url, model, **kwargs):
        calls.update(url=url, model=model, **kwargs)
        return [{field: 1 for field in loadgen.CSV_FIELDS} | {"errors": 0, "error_codes": {}}]

    monkeypatch.setattr(loadgen, "run_load", fake_run_load)
    token = tmp_path / "token"
    token.write_text("secret\n")
    csv_path = tmp_path / "load.csv"
    code = main(["benchmark", "server", "localhost:8001", "--model", "det", "--concurrency", "1,4",
                 "--duration", "2", "--csv", str(csv_path), "--token-file", str(token)])
    assert code == 0
    assert calls["url"] == "localhost:8001" and calls["model"] == "det"
    assert list(calls["concurrency_levels"]) == [1, 4] and calls["duration_s"] == 2 and calls["token"] == "secret"
    assert csv_path.read_text().splitlines()[0].startswith("concurrency,")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["benchmark", "model", "missing.pt"], "model not found"),
        (["benchmark", "suite", "m.pt", "--backends", "onnxruntime:int4"], "unknown precision 'int4'"),
        (["benchmark", "suite", "m.pt", "--backends", "onnx:fp32"], "unknown backend 'onnx'"),
    ],
)
def test_user_errors_print_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_suite_int8_row_calibrates_on_the_dataset_and_reports_its_map(tiny_checkpoint, tmp_path, small_peak_kernels):
    """The real exporter: an OpenVINO int8 row calibrated on the suite's dataset, with mAP."""
    from sdk.benchmarks.exporting import unavailable_reason
    from sdk.benchmarks.targets import ExportTarget
    from sdk.data.synthetic import generate_synthetic_coco

    reason = unavailable_reason(ExportTarget("openvino", "int8"))
    if reason:
        pytest.skip(f"openvino int8 export unavailable here: {reason}")
    data = generate_synthetic_coco(tmp_path / "data", num_train=0, num_val=2, image_size=96, seed=0, progress=False)
    out = tmp_path / "suite"
    assert main(["benchmark", "suite", str(tiny_checkpoint), "--backends", "openvino:int8", "--batch", "1",
                 "--dataset", str(data.val_json), "--out", str(out), *FAST]) == 0
    suite = json.loads((out / "suite.json").read_text())
    row = suite["rows"][-1]
    assert row["name"] == "openvino int8" and row["status"] == "ok", row.get("reason")
    assert row["calibration"]["calib_dataset"] == str(data.val_json)
    assert row["result"]["model"]["precision"] == "int8" and row["result"]["achieved"]["reference_class"] == "int8"
    assert 0 <= row["result"]["accuracy"]["bbox_mAP"] <= 1
    assert json.loads((out / "models" / "openvino_int8" / "manifest.json").read_text())["precision"] == "int8"
    table = (out / "suite.md").read_text()
    assert "| openvino | int8 | ok |" in table and "bbox mAP" in table and "calibrated on the dataset's images" in table


def test_server_mode_finds_the_only_model_and_fails_on_request_errors(monkeypatch, capsys):
    import sdk.serving.client as client_module
    import sdk.serving.loadgen as loadgen

    class OneModelClient:
        def __init__(self, url, token=None):
            self.model = "only"

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    seen = {}

    def dying_server(url, model, **kwargs):
        seen["model"] = model
        return [{field: 1 for field in loadgen.CSV_FIELDS} | {"errors": 54, "error_codes": {"UNAVAILABLE": 54}}]

    monkeypatch.setattr(client_module, "Client", OneModelClient)
    monkeypatch.setattr(loadgen, "run_load", dying_server)
    assert main(["benchmark", "server", "h:1", "--concurrency", "1", "--duration", "1"]) == 1
    err = capsys.readouterr().err
    assert seen["model"] == "only"
    assert err.startswith("error: 54 request(s) failed (UNAVAILABLE x54)") and err.count("\n") == 1
