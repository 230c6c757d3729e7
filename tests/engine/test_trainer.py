"""``sdk train`` end to end on a tiny dataset: outputs, resume after SIGKILL, fine-tuning."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest
import torch

from sdk.checkpoint import build_model_from_checkpoint, load_checkpoint
from sdk.cli.main import main
from sdk.config import Config

from engine_support import sdk_subprocess, write_tiny_config


def _records(work_dir: Path, kind: str) -> list[dict]:
    lines = (work_dir / "log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == kind]


def test_training_run_writes_every_output(trained_run):
    for name in ("latest.pt", "best.pt", "log.jsonl", "config.json", "curves.png"):
        assert (trained_run / name).is_file(), name
    assert (trained_run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = Config.from_dict(json.loads((trained_run / "config.json").read_text()))
    assert config.runtime.work_dir == str(trained_run)

    latest = load_checkpoint(trained_run / "latest.pt")
    assert latest.extra["epoch"] == 2 and latest.extra["step"] == 4  # 8 images / batch 4 = 2 iterations
    assert latest.meta.model_name == "fcos_tiny"
    assert latest.meta.classes[0] == "__background__" and len(latest.meta.classes) == 7
    assert latest.meta.preprocess.size == (96, 96)
    assert set(latest.extra) >= {"optimizer", "scheduler", "rng", "config", "best_map"}
    model, meta = build_model_from_checkpoint(trained_run / "best.pt")
    assert not model.training and meta == latest.meta

    train = _records(trained_run, "train")
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and r["lr"] > 0 and "loss_classification" in r for r in train)
    val = _records(trained_run, "val")
    assert [r["epoch"] for r in val] == [1, 2]
    assert all(0.0 <= r["bbox_mAP"] <= 1.0 for r in val)
    assert load_checkpoint(trained_run / "best.pt").extra["best_map"] == max(r["bbox_mAP"] for r in val)


def test_resume_after_sigkill_finishes_the_same_schedule(tiny_data, tmp_path):
    cfg = write_tiny_config(tmp_path / "cfg.py", tiny_data, epochs=6)
    work_dir = tmp_path / "run"
    args = ["train", str(cfg), "--work-dir", str(work_dir), "--no-progress"]
    proc = sdk_subprocess(*args)
    latest = work_dir / "latest.pt"
    deadline = time.monotonic() + 240
    while not latest.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    killed_mid_run = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    output = proc.communicate()[0]
    assert latest.exists(), output
    assert killed_mid_run, "training finished before it could be killed; make the test run longer"
    interrupted_at = load_checkpoint(latest).extra["epoch"]
    assert 1 <= interrupted_at < 6

    assert main([*args, "--resume"]) == 0
    final = load_checkpoint(latest)
    assert final.extra["epoch"] == 6 and final.extra["step"] == 12
    assert final.extra["scheduler"]["last_epoch"] == 12
    # the resumed run relogged the epochs after the checkpoint, each exactly once
    assert [r["epoch"] for r in _records(work_dir, "val")] == [1, 2, 3, 4, 5, 6]
    assert [r["step"] for r in _records(work_dir, "train")] == list(range(1, 13))
    build_model_from_checkpoint(latest)

    # resuming a finished run is a no-op that keeps the checkpoint
    assert main([*args, "--resume", str(latest)]) == 0
    assert load_checkpoint(latest).extra["epoch"] == 6


def test_load_from_with_other_classes_skips_the_class_head(tiny_data, trained_run, tmp_path, caplog):
    cfg = write_tiny_config(tmp_path / "cfg.py", tiny_data, epochs=1,
                            classes=("circle", "square", "triangle", "star", "ring", "cross", "extra"))
    work_dir = tmp_path / "finetune"
    with caplog.at_level("INFO", logger="sdk.engine.checkpointing"):
        rc = main(["train", str(cfg), "--work-dir", str(work_dir), "--load-from", str(trained_run / "best.pt"),
                   "--no-validate", "--no-progress"])
    assert rc == 0
    assert "skipping head.classification_head.cls_logits.weight" in caplog.text
    ckpt = load_checkpoint(work_dir / "latest.pt")
    assert len(ckpt.meta.classes) == 8 and not (work_dir / "best.pt").exists()
    source = load_checkpoint(trained_run / "best.pt").state_dict
    # the backbone started from the source weights (1 epoch of AdamW at lr 1e-3 moves them little)
    key = "backbone.body.stem.0.0.weight"
    assert torch.allclose(ckpt.state_dict[key], source[key], atol=0.05)


def test_amp_runs_on_cpu_in_bfloat16(tiny_config, tmp_path):
    work_dir = tmp_path / "amp"
    assert main(["train", str(tiny_config), "--work-dir", str(work_dir), "--amp", "--no-validate", "--no-progress",
                 "--cfg-options", "schedule.epochs=1", "schedule.ema=True"]) == 0
    ckpt = load_checkpoint(work_dir / "latest.pt")
    assert ckpt.extra["config"]["schedule"]["amp"] is True
    assert ckpt.extra["ema"]["updates"] == 2 and ckpt.extra["train_state_dict"]


@pytest.mark.parametrize(
    "extra_args, message",
    [
        (["--cfg-options", "schedule.lrr=0.1"], "unknown config key 'schedule.lrr'"),
        (["--cfg-options", "schedule.epochs=two"], "schedule.epochs: expected int"),
        (["--cfg-options", "data.train_ann=/nonexistent/train.json"], "annotation file not found"),
        (["--resume"], "there is no"),
        (["--load-from", "/nonexistent/model.pt"], "checkpoint not found"),
    ],
)
def test_user_errors_are_one_line(tiny_config, tmp_path, capsys, extra_args, message):
    rc = main(["train", str(tiny_config), "--work-dir", str(tmp_path / "w"), "--no-progress", *extra_args])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_bad_dataset_file_fails_clearly(tiny_config, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [{"id": 1}], "categories": []}')
    rc = main(["train", str(tiny_config), "--work-dir", str(tmp_path / "w"), "--no-progress",
               "--cfg-options", f"data.train_ann={bad}"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "bad.json" in err and "\n" not in err


def test_resume_from_another_models_checkpoint_fails_clearly(tiny_config, trained_run, tmp_path, capsys):
    rc = main(["train", str(tiny_config), "--work-dir", str(tmp_path / "w"), "--no-progress",
               "--resume", str(trained_run / "latest.pt"), "--cfg-options", "model.name=retinanet_tiny"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "use --load-from" in err and "\n" not in err


def test_auto_scale_lr_reports_the_scaled_rate(tiny_config, tmp_path, caplog):
    with caplog.at_level("INFO", logger="sdk.engine.trainer"):
        assert main(["train", str(tiny_config), "--work-dir", str(tmp_path / "w"), "--auto-scale-lr", "--no-validate",
                     "--no-progress", "--cfg-options", "schedule.epochs=1", "schedule.base_batch_size=2"]) == 0
    assert "--auto-scale-lr: lr 0.001 x total batch 4 / base batch 2 = 0.002" in caplog.text
