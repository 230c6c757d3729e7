"""The accuracy gate of reduced-precision exports (``sdk export --verify``, ``sdk verify``)
on a trained tiny detector.

The detector is ``fcos_tiny`` trained to fit 16 synthetic 128 px images (bbox mAP
about 0.85 on them after 20 epochs, ~40 s): a model with confident, well separated
detections, which is what a precision can lose. The same images are its calibration
and evaluation set: this checks the gate and the quantizer, not generalization.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from support.hardware import requires_openvino_bf16

from sdk.cli.main import main
from sdk.engine.verify import Tolerance, VerifyReport, gate_failures
from sdk.manifest import load_model_dir

SIZE = 128


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from sdk.data.synthetic import generate_synthetic_coco

    return generate_synthetic_coco(
        tmp_path_factory.mktemp("fit_data"), num_train=16, num_val=1, image_size=SIZE, seed=0, size_jitter=0.0,
        objects_per_image=(1, 3), object_size=(24.0, 56.0), clutter=0.0, empty_fraction=0.0, max_overlap=0.0,
        max_occlusion=0.0, max_truncation=0.0, progress=False,
    )


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fit")
    config = folder / "fit.py"
    config.write_text(f'''
from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig
from sdk.preprocess import Preprocess

config = Config(
    model=ModelConfig(name="fcos_tiny"),
    data=DataConfig(train_ann="{data.train_json}", train_images="{data.images_dir}",
                    val_ann="{data.train_json}", val_images="{data.images_dir}", batch_size=8, val_batch_size=8,
                    workers=0, preprocess=Preprocess(size=({SIZE}, {SIZE})), hflip=0.0),
    schedule=ScheduleConfig(optimizer="adamw", lr=3e-3, epochs=20, warmup_iters=5, lr_schedule="cosine",
                            grad_clip=10.0, base_batch_size=8),
    runtime=RuntimeConfig(device="cpu", log_interval=20, num_threads=1, val_interval=20),
)
''')
    assert main(["train", str(config), "--work-dir", str(folder / "work"), "--no-progress"]) == 0
    return folder / "work" / "best.pt"


def _export(trained, out, *args):
    return main(["export", str(trained), "--out", str(out), "--max-batch", "4", *args])


@pytest.mark.parametrize(
    ("backend", "precision"), [("onnxruntime", "int8"), ("openvino", "int8"), ("onnxruntime", "fp16"),
                               pytest.param("openvino", "bf16", marks=requires_openvino_bf16)],
)
def test_reduced_precision_export_passes_the_gate(trained, data, tmp_path, capsys, backend, precision):
    out = tmp_path / f"{backend}_{precision}"
    rc = _export(trained, out, "--backend", backend, "--precision", precision, "--calib-dataset", str(data.train_json),
                 "--verify", "--verify-dataset", str(data.train_json))
    printed = capsys.readouterr().out
    assert rc == 0, printed
    assert "PASSED" in printed and "largest per-class AP drops" in printed
    manifest = load_model_dir(out).manifest
    assert (manifest.backend, manifest.precision) == (backend, precision)
    if precision == "int8":
        assert manifest.precision_details["calibration_images"] == 16
        details = manifest.precision_details
        assert details["float32_layers"] == []  # the predictors quantized too, and still within the gate
        assert details["activations"] == ("uint8" if backend == "onnxruntime" else "int8")


def test_sdk_verify_reports_the_int8_gate(trained, data, tmp_path, capsys):
    out = tmp_path / "int8"
    assert _export(trained, out, "--int8", "--calib-dataset", str(data.train_json), "--int8-float-outputs") == 0
    float_layers = load_model_dir(out).manifest.precision_details["float32_layers"]
    assert "head.classification_head.cls_logits" in float_layers and "head.regression_head.bbox_reg" in float_layers
    report = tmp_path / "report.json"
    assert main(["verify", str(out), "--dataset", str(data.train_json), "--json", str(report), "--no-progress"]) == 0
    result = json.loads(report.read_text())
    assert result["precision"] == "int8" and result["max_map_drop"] == 0.015
    assert result["eager_bbox_mAP"] > 0.6 and result["eager_bbox_mAP"] - result["export_bbox_mAP"] <= 0.015
    assert set(result["classwise_AP_drop"]) and result["match_ratio"] > 0.8
    # the same export against a gate it cannot meet: exit 1, the reason in one line
    drop = result["eager_bbox_mAP"] - result["export_bbox_mAP"]
    if drop > 0:
        assert main(["verify", str(out), "--dataset", str(data.train_json), "--max-map-drop", f"{drop / 2:.6f}",
                     "--no-progress"]) == 1
        assert "more than the int8 tolerance" in capsys.readouterr().out


def test_failed_gate_leaves_no_model_dir(trained, data, tmp_path, capsys):
    black = tmp_path / "black"
    black.mkdir()
    cv2.imwrite(str(black / "black.png"), np.zeros((SIZE, SIZE, 3), np.uint8))
    out = tmp_path / "models" / "int8"
    # ranges calibrated on one black image clip every real activation
    rc = _export(trained, out, "--int8", "--calib-images", str(black), "--verify", "--verify-dataset",
                 str(data.train_json))
    captured = capsys.readouterr()
    assert rc == 1, captured.out
    assert "FAILED: bbox mAP dropped by" in captured.out
    assert "no model_dir was written" in captured.err and captured.err.count("\n") == 1
    assert not out.exists() and list((tmp_path / "models").iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--precision", "bf16"], "--precision bf16 is not available for --backend onnxruntime"),
        (["--precision", "int8"], "int8 needs real images to calibrate on"),
        (["--fp16", "--int8"], "conflicting precisions"),
        (["--backend", "aoti", "--int8", "--calib-images", "."], "not available for --backend aoti"),
        (["--fp16", "--verify"], "needs a dataset: add --verify-dataset"),
        (["--backend", "openvino", "--flavor", "tensorrt"], "drop --flavor tensorrt"),
        (["--int8", "--calib-images", ".", "--flavor", "tensorrt"], "export int8 with --flavor onnxruntime"),
    ],
)
def test_bad_precision_uses_fail_in_one_line(trained, tmp_path, capsys, args, message):
    assert _export(trained, tmp_path / "out", *args) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_unknown_precision_is_refused_by_the_parser(trained, tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        _export(trained, tmp_path / "out", "--precision", "int4")
    assert info.value.code == 2 and "invalid choice: 'int4'" in capsys.readouterr().err


def _report(eager, export, precision):
    return VerifyReport(num_images=1, eager_detections=1, export_detections=1, matched=1, max_score_diff=0.0,
                        tolerance=Tolerance.for_precision(precision), eager_mAP=eager, export_mAP=export,
                        precision=precision)


def test_gate_is_two_sided_for_fp32_and_a_drop_limit_for_reduced_precisions():
    assert gate_failures(_report(0.5, 0.5 - 0.0019, "fp32")) == []
    assert "dropped by 0.0030" in gate_failures(_report(0.5, 0.497, "fp32"))[0]
    assert "either way" in gate_failures(_report(0.5, 0.503, "fp32"))[0]
    assert gate_failures(_report(0.5, 0.486, "int8")) == []
    assert gate_failures(_report(0.5, 0.53, "int8")) == []  # a gain is no failure
    assert "int8 tolerance 0.015" in gate_failures(_report(0.5, 0.484, "int8"))[0]
    assert gate_failures(_report(0.5, 0.4951, "bf16")) == [] and gate_failures(_report(0.5, 0.494, "fp16"))
    assert Tolerance.for_precision("int8", max_map_drop=0.05).max_map_drop == 0.05
