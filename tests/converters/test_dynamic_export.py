"""``sdk export --dynamic-shape``: a keep_ratio checkpoint -> one model_dir that takes
any H x W, run by ``Detector`` on photos of several aspect ratios, against the eager
checkpoint; and the refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
from deploy_support import (
    assert_same_contract,
    detections_as_contract,
    save_random_checkpoint,
    small_keep_ratio_preprocess,
)

from sdk import Detector
from sdk.converters.export import ExportOptions, export_checkpoint
from sdk.errors import ConfigError

# landscape, portrait, a thin strip, square: padded inputs 224x320, 320x224, 96x320, 224x224
IMAGE_SIZES = [(480, 640), (300, 200), (123, 457), (512, 512)]
# ONNX Runtime / OpenVINO convolutions round differently from PyTorch's
RUNTIME_TOLERANCE = {"atol": 1e-2, "score_atol": 1e-4, "score_rtol": 1e-4}


def _photos() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in IMAGE_SIZES]


@pytest.fixture(scope="module")
def keep_ratio_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "fasterrcnn_tiny.pt"
    return save_random_checkpoint(path, "fasterrcnn_tiny", seed=1, preprocess=small_keep_ratio_preprocess())[0]


def _check_against_eager(checkpoint, model_dir) -> None:
    manifest = json.loads((model_dir / "manifest.json").read_text())
    assert manifest["input"]["shape"] == [-1, 3, -1, -1] and manifest["preprocess"]["canvas"] is None
    eager, exported = Detector(checkpoint, score_thr=0.0), Detector(model_dir, score_thr=0.0)
    photos = _photos()
    # one image at a time (each padded to /32 alone) and a mixed batch (padded to the largest)
    for batch in ([photos[0]], [photos[1]], [photos[2]], photos):
        reference = detections_as_contract(eager(batch, channel_order="rgb"))
        ours = detections_as_contract(exported(batch, channel_order="rgb"))
        assert_same_contract(ours, reference, min_dets=5, **RUNTIME_TOLERANCE)


def test_onnxruntime_dynamic_model_dir_matches_eager(keep_ratio_checkpoint, tmp_path):
    from sdk.cli.main import main

    out = export_checkpoint(keep_ratio_checkpoint, tmp_path / "dynamic",
                            ExportOptions(backend="onnxruntime", dynamic_shape=True, max_batch=4))
    _check_against_eager(keep_ratio_checkpoint, out)
    assert main(["verify", str(out)]) == 0  # export.json names the checkpoint: sdk verify needs nothing else


@pytest.mark.slow
def test_openvino_dynamic_model_dir_matches_eager(keep_ratio_checkpoint, tmp_path):
    pytest.importorskip("openvino")
    out = export_checkpoint(keep_ratio_checkpoint, tmp_path / "dynamic",
                            ExportOptions(backend="openvino", dynamic_shape=True, max_batch=4))
    _check_against_eager(keep_ratio_checkpoint, out)


@pytest.mark.slow
def test_int8_dynamic_model_dir_calibrates_on_mixed_sizes(keep_ratio_checkpoint, tmp_path):
    """Calibration batches of different padded sizes feed one dynamic graph."""
    import cv2

    images = tmp_path / "calib"
    images.mkdir()
    for i, photo in enumerate(_photos()):
        cv2.imwrite(str(images / f"{i}.png"), photo)
    out = export_checkpoint(keep_ratio_checkpoint, tmp_path / "int8", ExportOptions(
        backend="onnxruntime", precision="int8", dynamic_shape=True, max_batch=2, calib_images=str(images)))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["precision"] == "int8" and manifest["input"]["shape"] == [-1, 3, -1, -1]
    detections = Detector(out, score_thr=0.0)(_photos(), channel_order="rgb")
    assert [len(d) for d in detections] == [100] * len(IMAGE_SIZES)


@pytest.mark.parametrize(("options", "match"), [
    ({"input_size": (224, 320)}, "exclude each other"),
    ({"backend": "aoti"}, "not available for --backend aoti"),
])
def test_dynamic_shape_refusals(keep_ratio_checkpoint, tmp_path, options, match):
    with pytest.raises(ConfigError, match=match):
        export_checkpoint(keep_ratio_checkpoint, tmp_path / "out", ExportOptions(dynamic_shape=True, **options))
    assert not (tmp_path / "out").exists()


def test_letterbox_models_have_one_size(tmp_path):
    checkpoint, _ = save_random_checkpoint(tmp_path / "letterbox.pt", "retinanet_tiny")
    with pytest.raises(ConfigError, match="for keep_ratio models"):
        export_checkpoint(checkpoint, tmp_path / "out", ExportOptions(dynamic_shape=True))


def test_cli_flag(keep_ratio_checkpoint, tmp_path, capsys):
    from sdk.cli.main import main

    args = ["export", str(keep_ratio_checkpoint), "--out", str(tmp_path / "out"), "--dynamic-shape"]
    assert main([*args, "--input-size", "224x320"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "exclude each other" in err and err.count("\n") == 0
    assert main([*args, "--max-batch", "2"]) == 0
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["input"]["shape"] == [-1, 3, -1, -1]
