"""The suite's summary table: columns, per-precision % of peak, skipped rows, JSON summary."""

from __future__ import annotations

import json

from sdk.benchmarks.suite_report import summary_rows, suite_markdown, suite_table, write_suite


def cells(table: str, first: str, second: str) -> list[str]:
    """The cells of the markdown row whose first two cells are ``first`` and ``second``."""
    for line in table.splitlines():
        parts = [c.strip() for c in line.strip("|").split("|")]
        if parts[:2] == [first, second]:
            return parts
    raise AssertionError(f"no row {first} {second} in\n{table}")


def test_columns_and_per_precision_peak(fake_suite):
    suite = fake_suite(dataset=True)
    table = suite_table(suite)
    head = [c.strip() for c in table.splitlines()[0].strip("|").split("|")]
    assert head == ["backend", "precision", "status", "size MB", "bbox mAP", "ms/img b1", "img/s b8",
                    "speed-up vs sdk eager", "decode+pre+post % b1", "GFLOP/s", "% of peak"]
    int8 = dict(zip(head, cells(table, "onnxruntime", "int8")))
    # 2 GFLOPs x (1000 / (10 / sqrt 8)) img/s = 565.7 GFLOP/s against the int8 reference, 800
    assert int8["status"] == "ok" and int8["bbox mAP"] == "0.5000" and int8["ms/img b1"] == "10.0"
    assert int8["speed-up vs sdk eager"] == "4.00x" and int8["GFLOP/s"] == "565.7" and int8["% of peak"] == "70.7"
    bf16 = dict(zip(head, cells(table, "openvino", "bf16")))
    assert bf16["% of peak"] == f"{100 * 2 * 1e3 / (8 / 8 ** 0.5) / 400:.1f}"  # vs the bf16 reference
    fp32 = dict(zip(head, cells(table, "onnxruntime", "fp32")))
    assert fp32["% of peak"] == f"{100 * 2 * 1e3 / (20 / 8 ** 0.5) / 100:.1f}"  # vs the fp32 reference
    skipped = cells(table, "tensorrt", "fp16")
    assert skipped[2] == "skipped: TensorRT needs a CUDA GPU (run with --device cuda)" and set(skipped[3:]) == {"-"}
    assert cells(table, "torchvision eager", "fp32")[2].startswith("n/a:")


def test_optional_columns_follow_the_run(fake_suite):
    table = suite_table(fake_suite(dataset=False, batch_sizes=(1,)))
    assert "bbox mAP" not in table and "img/s b" not in table and "| % of peak |" in table


def test_markdown_names_the_machine_and_the_reference_kernels(fake_suite):
    suite = fake_suite()
    text = suite_markdown(suite, title="t")
    assert suite["environment"]["cpu_model"] in text.split("|")[0]  # before the table
    assert "**fp32** 100 GFLOP/s (ort MatMul fp32)" in text and "**int8** 800 GFLOP/s (ort MatMulInteger int8)" in text
    assert "**bf16/fp16** 400 GFLOP/s (ov Conv bf16)" in text
    assert "## onnxruntime int8" in text and "int8 calibrated on the 8 benchmark images" in text
    assert "CPU inference flags" in text and "1-min load average" in text


def test_json_has_the_summary_rows(fake_suite, tmp_path):
    paths = write_suite(fake_suite(dataset=True), tmp_path)
    saved = json.loads(paths["json"].read_text())
    assert saved["summary"] == json.loads(json.dumps(summary_rows(saved)))
    row = next(r for r in saved["summary"] if r["name"] == "onnxruntime int8")
    assert {"backend", "precision", "status", "size_mb", "bbox_mAP", "ms_per_img_b1", "img_per_s_big", "speedup",
            "gflops_per_s", "fraction_of_peak", "peak_reference", "calibration"} <= set(row)
    assert row["peak_reference"] == "ort MatMulInteger int8" and row["calibration"] == "the 8 benchmark images"
