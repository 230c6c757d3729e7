"""A run never replaces another run's checkpoints unasked (issue 16, item 2), and a
resume with more epochs follows the new schedule and reports what it trained (item 9)."""

from __future__ import annotations

import json
import shutil

from sdk.cli.main import main
from sdk.engine.schedules import LrFactor


def test_second_run_into_a_finished_work_dir_is_refused(tiny_config, trained_run, capsys):
    best = (trained_run / "best.pt").read_bytes()
    rc = main(["train", str(tiny_config), "--work-dir", str(trained_run), "--no-progress",
               "--cfg-options", "schedule.epochs=1"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: ") and "\n" not in err
    assert "--resume" in err and "--overwrite" in err
    assert (trained_run / "best.pt").read_bytes() == best


def test_overwrite_starts_a_new_run_there(tiny_config, trained_run, tmp_path, capsys):
    work_dir = tmp_path / "again"
    shutil.copytree(trained_run, work_dir)
    assert main(["train", str(tiny_config), "--work-dir", str(work_dir), "--overwrite", "--no-validate",
                 "--no-progress", "--cfg-options", "schedule.epochs=1"]) == 0
    assert "trained 1 epoch in" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in (work_dir / "log.jsonl").read_text().splitlines()
             if json.loads(line)["type"] == "train"]
    assert steps == [1, 2]  # a fresh log, not appended to the old run's


def test_resume_with_more_epochs_follows_the_longer_schedule(tiny_config, trained_run, tmp_path, capsys):
    work_dir = tmp_path / "longer"
    shutil.copytree(trained_run, work_dir)
    assert main(["train", str(tiny_config), "--work-dir", str(work_dir), "--resume", "--no-validate",
                 "--no-progress", "--cfg-options", "schedule.epochs=3"]) == 0
    assert "trained 1 epoch (epochs 3-3)" in capsys.readouterr().out
    records = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    lrs = {r["step"]: r["lr"] for r in records if r["type"] == "train"}
    # tiny config: lr 1e-3, cosine over 3 epochs x 2 iterations, warm-up 2 iterations
    factor = LrFactor(iters_per_epoch=2, total_iters=6, warmup_iters=2, warmup_factor=0.001, schedule="cosine",
                      steps=(), gamma=0.1, min_lr_ratio=0.01)
    for step in (5, 6):  # logged after the step: the rate of the next iteration
        assert abs(lrs[step] - 1e-3 * factor(step)) < 1e-9, (step, lrs[step])
    assert lrs[5] > 1e-3 * 0.01 * 1.5  # not stuck at the old schedule's final rate
