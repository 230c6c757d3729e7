"""``sdk data browse``, ``sdk config show``, ``sdk publish`` and ``sdk test --format-only``."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sdk.analysis.browse import transformed_samples
from sdk.checkpoint import load_checkpoint
from sdk.cli.main import main

REPO = Path(__file__).resolve().parents[2]


# -- sdk data browse --------------------------------------------------------------
def test_browse_draws_boxes_after_the_training_transforms(bright_dataset):
    # always flipped, placed at the images' own size: each box mirrors in x
    options = ["data.hflip=1.0", "data.preprocess.size=(64,96)"]
    samples = list(transformed_samples(bright_dataset, None, cfg_options=options, progress=False))
    assert [name for name, _, _ in samples] == ["1.png", "2.png", "3.png", "4.png"]
    name, rgb, gt = samples[0]
    assert rgb.shape == (64, 96, 3)
    np.testing.assert_allclose(gt.boxes, [[96 - 50, 10, 96 - 10, 40]])  # ground truth [10, 10, 50, 40] mirrored
    assert gt.names == ["red"]
    assert rgb[25, 96 - 30].tolist() == [255, 0, 0] and rgb[25, 30].tolist() == [0, 0, 0]  # the image too
    # evaluation pipeline: unchanged boxes; a letterbox to 32 x 48 halves them
    _, small, gt = next(transformed_samples(bright_dataset, None, cfg_options=["data.preprocess.size=(32,48)"],
                                            augment=False, progress=False))
    assert small.shape == (32, 48, 3)
    np.testing.assert_allclose(gt.boxes, [[5, 5, 25, 20]])


def test_browse_cli_with_a_config(tiny_shapes, tmp_path, capsys):
    config = tmp_path / "cfg.py"
    config.write_text(
        "from sdk.config import Config, DataConfig, ModelConfig\n"
        "from sdk.preprocess import Preprocess\n"
        "config = Config(model=ModelConfig(name='fcos_tiny'), data=DataConfig(preprocess=Preprocess(size=(80, 80)),"
        " scale_jitter=(0.5, 1.5), photometric=True))\n")
    out = tmp_path / "browse"
    ann = tiny_shapes / "annotations" / "val.json"
    assert main(["data", "browse", str(ann), "--config", str(config), "--out", str(out), "--num", "3",
                 "--no-progress"]) == 0
    files = sorted(out.glob("*.jpg"))
    assert len(files) == 3 and all(cv2.imread(str(f)).shape == (80, 80, 3) for f in files)
    assert "drew 3 image(s)" in capsys.readouterr().out
    assert main(["data", "browse", str(ann), "--out", str(out), "--cfg-options", "data.nope=1"]) == 2
    assert "unknown config key 'data.nope'" in capsys.readouterr().err


# -- sdk config show --------------------------------------------------------------
def test_config_show_resolves_overrides_and_model_defaults(tmp_path, capsys):
    out = tmp_path / "resolved.json"
    argv = ["config", "show", str(REPO / "configs" / "quickstart_tiny.py"), "--cfg-options", "schedule.lr=0.02",
            "data.batch_size=4", "--out", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(out.read_text())
    assert printed["schedule"]["lr"] == 0.02 and printed["data"]["batch_size"] == 4
    assert printed["model"]["name"] == "rtmdet_nano" and printed["data"]["preprocess"]["size"] == [256, 256]

    config = tmp_path / "bare.py"
    config.write_text("from sdk.config import Config, ModelConfig\nconfig = Config(model=ModelConfig(name='fcos_tiny'))\n")
    from sdk.models import get_model_spec

    assert main(["config", "show", str(config)]) == 0
    resolved = json.loads(capsys.readouterr().out)
    assert resolved["data"]["preprocess"] == json.loads(json.dumps(get_model_spec("fcos_tiny").default_preprocess.to_dict()))
    assert resolved["runtime"]["work_dir"] == str(Path("work_dirs") / "bare")
    assert main(["config", "show", str(config), "--raw"]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["preprocess"] is None


def test_config_show_bad_key_is_one_line(capsys):
    assert main(["config", "show", str(REPO / "configs" / "quickstart_tiny.py"), "--cfg-options", "schedule.lrr=1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'schedule.lrr'") and err.count("\n") == 1


# -- sdk publish ------------------------------------------------------------------
def test_publish_strips_training_state_and_names_by_hash(tiny_checkpoint, tmp_path, capsys):
    assert load_checkpoint(tiny_checkpoint).extra is not None
    assert main(["publish", str(tiny_checkpoint), str(tmp_path / "pub" / "fcos_tiny.pt")]) == 0
    (published,) = (tmp_path / "pub").iterdir()
    match = re.fullmatch(r"fcos_tiny-([0-9a-f]{8})\.pt", published.name)
    assert match and hashlib.sha256(published.read_bytes()).hexdigest()[:8] == match.group(1)
    original, loaded = load_checkpoint(tiny_checkpoint), load_checkpoint(published)
    assert loaded.extra is None and loaded.meta == original.meta
    assert loaded.state_dict.keys() == original.state_dict.keys()
    assert all(torch.equal(loaded.state_dict[k], v) and loaded.state_dict[k].device.type == "cpu"
               for k, v in original.state_dict.items())
    assert published.stat().st_size < tiny_checkpoint.stat().st_size
    assert f"published {published}" in capsys.readouterr().out


def test_publish_errors(tiny_checkpoint, tmp_path, capsys):
    assert main(["publish", str(tiny_checkpoint), str(tmp_path)]) == 2
    assert "file name to publish under" in capsys.readouterr().err
    assert main(["publish", str(tmp_path / "missing.pt"), str(tmp_path / "x.pt")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


# -- sdk test --format-only + sdk analyze eval ---------------------------------------
def test_wiring_format_only_then_offline_eval_equals_sdk_test(bright_model_dir, bright_dataset, tmp_path, capsys):
    unlabeled = tmp_path / "annotations" / "test.json"
    data = json.loads(bright_dataset.read_text())
    unlabeled.parent.mkdir()
    unlabeled.write_text(json.dumps({**data, "annotations": []}))
    images = str(bright_dataset.parent.parent / "images")
    results = tmp_path / "results.json"
    assert main(["test", str(bright_model_dir), "--dataset", str(unlabeled), "--images", images, "--format-only",
                 "--out", str(results), "--no-progress", "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "not evaluated" in out and "AP" not in out
    assert len(json.loads(results.read_text())) == 4

    tested, offline = tmp_path / "tested.json", tmp_path / "offline.json"
    assert main(["test", str(bright_model_dir), "--dataset", str(bright_dataset), "--metrics-out", str(tested),
                 "--no-progress", "--workers", "0"]) == 0
    assert main(["analyze", "eval", str(results), "--dataset", str(bright_dataset), "--metrics-out", str(offline)]) == 0
    assert json.loads(offline.read_text()) == json.loads(tested.read_text())
    assert json.loads(offline.read_text())["bbox_mAP_50"] > 0.5


def test_format_only_needs_out(bright_model_dir, bright_dataset, capsys):
    assert main(["test", str(bright_model_dir), "--dataset", str(bright_dataset), "--format-only"]) == 2
    assert "--out" in capsys.readouterr().err


@pytest.mark.parametrize("tool", ["logs", "results", "confusion", "errors", "robustness", "eval"])
def test_every_analyze_tool_has_help(tool, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", tool, "--help"])
    assert exc.value.code == 0 and f"sdk analyze {tool}" in capsys.readouterr().out


@pytest.mark.slow
def test_readme_pictures_script_on_a_tiny_quickstart(tiny_checkpoint, tiny_shapes, tmp_path):
    """``scripts/analysis_pictures.py`` end to end (int8 export included) on a stand-in
    for runs/quickstart: the random-weight checkpoint and the tiny synthetic data."""
    import shutil
    import subprocess
    import sys

    from sdk.data.synthetic import generate_synthetic_coco

    qs = tmp_path / "quickstart"
    generate_synthetic_coco(qs / "data", num_train=4, num_val=0, image_size=96, seed=1, progress=False)
    shutil.copy(tiny_shapes / "annotations" / "val.json", qs / "data" / "annotations" / "val.json")
    shutil.copytree(tiny_shapes / "images" / "val", qs / "data" / "images" / "val", dirs_exist_ok=True)
    (qs / "train").mkdir()
    shutil.copy(tiny_checkpoint, qs / "train" / "best.pt")
    (qs / "train" / "log.jsonl").write_text(
        '{"type": "train", "epoch": 1, "iter": 2, "step": 2, "loss": 1.5, "iter_time": 0.1}\n'
        '{"type": "val", "epoch": 1, "bbox_mAP": 0.1}\n')
    out = tmp_path / "pictures"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "analysis_pictures.py"), "--quickstart", str(qs),
                           "--out", str(out), "--robustness-images", "2", "--corruptions", "noise"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {
        "logs.png", "results_best.jpg", "results_worst.jpg", "confusion.png", "errors.png", "errors_classes.png",
        "browse.jpg", "robustness.png", "corruptions.jpg", "commands.md"}
