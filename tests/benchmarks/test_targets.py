"""``backend[:precision]`` items of ``--backends``, which pairs this machine can run,
and where int8 exports calibrate."""

from __future__ import annotations

import pytest

from sdk.benchmarks.exporting import calibration_source, unavailable_reason
from sdk.benchmarks.targets import CPU_TARGETS, CUDA_TARGETS, ExportTarget, default_targets, parse_targets
from sdk.errors import ConfigError


def test_items_parse_with_fp32_default_commas_spaces_and_no_duplicates():
    targets = parse_targets(["onnxruntime:int8,openvino:bf16", "aoti", "OpenVINO:BF16", "onnxruntime:fp32 onnxruntime"])
    assert targets == [ExportTarget("onnxruntime", "int8"), ExportTarget("openvino", "bf16"),
                       ExportTarget("aoti", "fp32"), ExportTarget("onnxruntime", "fp32")]
    assert parse_targets("onnxruntime,tensorrt") == [ExportTarget("onnxruntime"), ExportTarget("tensorrt")]
    assert parse_targets([("openvino", "int8")]) == [ExportTarget("openvino", "int8")]
    target = ExportTarget("openvino", "bf16")
    assert (target.name, target.folder, target.item) == ("openvino bf16", "openvino_bf16", "openvino:bf16")


@pytest.mark.parametrize(
    "items, message",
    [
        ("onnxruntime:int4", "unknown precision 'int4'; use one of fp32, fp16, bf16, int8"),
        ("onnx", "unknown backend 'onnx'"),
        ("onnxruntime:", "unknown precision ''"),
        (":int8", "unknown backend ''"),
        (" , ", "--backends is empty"),
    ],
)
def test_bad_items_are_one_line_config_errors(items, message):
    with pytest.raises(ConfigError) as info:
        parse_targets(items)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_defaults_cover_the_precisions_of_each_device():
    assert default_targets("cpu") == CPU_TARGETS and default_targets("cuda:0") == CUDA_TARGETS
    assert {t.item for t in CPU_TARGETS} == {"onnxruntime:fp32", "onnxruntime:int8", "openvino:fp32", "openvino:bf16",
                                             "openvino:int8", "aoti:fp32"}


def test_unavailable_pairs_have_a_one_line_reason():
    tensorrt = unavailable_reason(ExportTarget("tensorrt", "fp16"), "cpu")  # not installed, or no GPU
    assert ("TensorRT needs a CUDA GPU" in tensorrt or "not installed" in tensorrt) and "\n" not in tensorrt
    assert "unknown backend" in unavailable_reason("onnx", "cpu")
    bf16 = unavailable_reason(ExportTarget("onnxruntime", "bf16"), "cpu")
    assert bf16 and "bf16" in bf16.lower().replace("bfloat16", "bf16") and "\n" not in bf16
    assert unavailable_reason(ExportTarget("onnxruntime", "fp32"), "cpu") is None


def test_int8_calibrates_on_the_dataset_or_on_the_benchmark_images(tmp_path):
    from sdk.benchmarks.images import synthetic_images

    assert calibration_source([b"x"], tmp_path, dataset="data/annotations/val.json") == {
        "calib_dataset": "data/annotations/val.json", "description": "the dataset's images (data/annotations/val.json)"}
    assert calibration_source([b"x"], tmp_path, dataset="a.json", dataset_images="imgs")["calib_images"] == "imgs"
    (tmp_path / "calibration_images").mkdir()
    (tmp_path / "calibration_images" / "stale.jpg").write_bytes(b"old")  # from an earlier suite
    encoded = synthetic_images(3, size=(16, 24)) + [b"\x89PNG\r\n\x1a\n...."]
    source = calibration_source(encoded, tmp_path)
    folder = tmp_path / "calibration_images"
    assert source["calib_images"] == str(folder) and "the 4 benchmark images" in source["description"]
    assert sorted(p.name for p in folder.iterdir()) == ["0000.jpg", "0001.jpg", "0002.jpg", "0003.png"]
    assert (folder / "0001.jpg").read_bytes() == encoded[1]


def test_suite_exports_each_target_into_its_folder_with_calibration(
    make_random_checkpoint, make_fake_result, tmp_path, monkeypatch
):
    """run_suite's plumbing with the exporter and the timing stubbed: folders
    ``models/<backend>_<precision>``, precision and calibration handed to the export,
    the calibration recorded in the int8 row, unavailable pairs skipped."""
    from sdk.benchmarks import exporting, harness
    from sdk.benchmarks.backend_suite import run_suite

    exports = []

    def fake_export(checkpoint, target, out_dir, **kwargs):
        exports.append((target, out_dir, kwargs["calibration"]))
        return out_dir

    def fake_benchmark(model, encoded, name=None, **kwargs):
        return make_fake_result(name, name.split()[1], {1: 10.0})

    monkeypatch.setattr(exporting, "export_checkpoint", fake_export)
    monkeypatch.setattr(harness, "benchmark_model", fake_benchmark)
    monkeypatch.setattr(exporting, "unavailable_reason",
                        lambda t, device: "no bf16 Conv kernel" if t.precision == "bf16" else None)
    checkpoint = make_random_checkpoint("retinanet_tiny")
    suite = run_suite(checkpoint, [b"\xff\xd8a", b"\xff\xd8b"], backends="onnxruntime:int8 onnxruntime:bf16 openvino:int8",
                      references=(), peak=False, out_dir=tmp_path, batch_sizes=(1,))
    rows = {r["name"]: r for r in suite["rows"]}
    assert rows["onnxruntime bf16"] == {"name": "onnxruntime bf16", "backend": "onnxruntime", "precision": "bf16",
                                        "status": "skipped", "reason": "no bf16 Conv kernel"}
    assert [(t.item, d) for t, d, _ in exports] == [("onnxruntime:int8", tmp_path / "models" / "onnxruntime_int8"),
                                                    ("openvino:int8", tmp_path / "models" / "openvino_int8")]
    calibration = exports[0][2]
    assert calibration["calib_images"] == str(tmp_path / "calibration_images")
    assert len(list((tmp_path / "calibration_images").iterdir())) == 2
    assert rows["openvino int8"]["calibration"] == calibration and rows["onnxruntime int8"]["status"] == "ok"
    assert suite["targets"] == ["onnxruntime:int8", "onnxruntime:bf16", "openvino:int8"]
