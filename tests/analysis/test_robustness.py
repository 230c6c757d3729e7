"""Corruptions (shape, determinism, severity order) and ``sdk analyze robustness``:
severity 0 equals the clean mAP, which equals ``sdk test``'s."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sdk.analysis.corruptions import BENCHMARK, CORRUPTIONS, FAMILIES, corrupt
from sdk.analysis.robustness import resolve_corruptions
from sdk.cli.main import main


@pytest.fixture(scope="module")
def image():
    """A 72 x 90 test card: gradients, a bright block and fine stripes."""
    yy, xx = np.mgrid[0:72, 0:90]
    img = np.stack([xx * 2.5, yy * 3.0, 128 + 60 * np.sin(xx / 2.0)], axis=-1)
    img[20:50, 30:60] = [240, 40, 40]
    return np.clip(img, 0, 255).astype(np.uint8)


def test_fifteen_benchmark_corruptions_in_four_families():
    assert len(BENCHMARK) == 15 and set(FAMILIES) == {"noise", "blur", "weather", "digital"}
    assert resolve_corruptions(None) == list(BENCHMARK)
    assert resolve_corruptions(["blur", "fog", "motion_blur"]) == ["defocus_blur", "glass_blur", "motion_blur",
                                                                   "zoom_blur", "fog"]


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_corruption_shape_determinism_and_severity(image, name):
    def run(severity, seed=0):
        return corrupt(image, name, severity, np.random.default_rng(seed))

    assert np.array_equal(run(0), image)
    outs = [run(s) for s in (1, 5)]
    for out in outs:
        assert out.shape == image.shape and out.dtype == np.uint8
        assert not np.array_equal(out, image)
    assert np.array_equal(run(3), run(3)), "the generator is the only randomness"
    diff = [np.abs(o.astype(float) - image).mean() for o in outs]
    if name != "saturate":  # desaturates at severities 1-2, oversaturates at 3-5
        assert diff[1] > diff[0], f"{name}: severity 5 changes the image less than severity 1 ({diff})"


def test_wiring_robustness_severity_zero_equals_clean_and_sdk_test(bright_model_dir, bright_dataset, tmp_path, capsys):
    tested = tmp_path / "tested.json"
    assert main(["test", str(bright_model_dir), "--dataset", str(bright_dataset), "--metrics-out", str(tested),
                 "--no-progress", "--workers", "0"]) == 0
    clean_map = json.loads(tested.read_text())["bbox_mAP"]
    assert clean_map > 0.5
    out = tmp_path / "robustness"
    argv = ["analyze", "robustness", str(bright_model_dir), "--dataset", str(bright_dataset), "--out", str(out),
            "--corruptions", "gaussian_noise", "brightness", "contrast", "--severities", "0", "5", "--no-progress"]
    assert main(argv) == 0
    (model,) = json.loads((out / "robustness.json").read_text())["models"]
    assert model["clean_bbox_mAP"] == clean_map
    for name in ("gaussian_noise", "brightness", "contrast"):
        assert model["bbox_mAP"][name]["0"] == clean_map
    # the bright-box model needs bright pixels: contrast 0.05 leaves none, so it finds nothing
    assert model["bbox_mAP"]["contrast"]["5"] == 0.0
    assert model["mPC"] == pytest.approx(np.mean([model["bbox_mAP"][n]["5"] for n in model["bbox_mAP"]]))
    assert model["mPC_by_family"]["noise"] == model["bbox_mAP"]["gaussian_noise"]["5"]
    assert model["mPC_by_family"]["digital"] == 0.0 and set(model["mPC_by_family"]) == {"noise", "weather", "digital"}
    assert {p.name for p in out.iterdir()} >= {"robustness.csv", "robustness.png", "corruptions.jpg"}
    assert "mPC" in capsys.readouterr().out


def test_robustness_compares_models_on_the_same_images(tiny_checkpoint, tiny_shapes, tmp_path):
    out = tmp_path / "robustness"
    ann = tiny_shapes / "annotations" / "val.json"
    argv = ["analyze", "robustness", str(tiny_checkpoint), str(tiny_checkpoint), "--dataset", str(ann),
            "--out", str(out), "--corruptions", "gaussian_noise", "--severities", "2", "--max-images", "2", "--no-progress"]
    assert main(argv) == 0
    report = json.loads((out / "robustness.json").read_text())
    first, second = report["models"]
    assert report["images"] == 2 and first["bbox_mAP"] == second["bbox_mAP"]  # same model, same pixels


def test_robustness_bad_input_is_one_line(bright_model_dir, bright_dataset, tmp_path, capsys):
    base = ["analyze", "robustness", str(bright_model_dir), "--dataset", str(bright_dataset), "--out", str(tmp_path)]
    assert main(base + ["--corruptions", "rain"]) == 2
    err = capsys.readouterr().err
    assert "unknown corruption 'rain'" in err and err.count("\n") == 1
    assert main(base + ["--severities", "6"]) == 2
    assert "0..5" in capsys.readouterr().err
