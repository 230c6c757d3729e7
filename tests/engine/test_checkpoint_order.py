"""best.pt and latest.pt survive a crash at any write, and ``--resume`` repairs best.pt
(issue 15, item 4). Validation is replaced by fixed scores so every epoch's outcome is known."""

from __future__ import annotations

import logging

import pytest

from sdk import checkpoint as checkpoint_module
from sdk.checkpoint import load_checkpoint
from sdk.cli.main import main
from sdk.engine.trainer import Trainer

from engine_support import write_tiny_config


@pytest.fixture
def scored(monkeypatch):
    """Epoch e validates to bbox_mAP e / 10 (logged as the real validation does): every epoch is a new best."""

    def validate(self, epoch):
        self.run_log.write({"type": "val", "epoch": epoch, "bbox_mAP": epoch / 10, "bbox_mAP_50": epoch / 5,
                            "bbox_mAP_75": epoch / 20})
        return {"epoch": epoch, "bbox_mAP": epoch / 10}

    monkeypatch.setattr(Trainer, "validate", validate)


def best_map(path) -> float:
    return load_checkpoint(path).extra["best_map"]


def test_a_crash_while_writing_best_leaves_both_loadable_and_resume_completes(tiny_data, tmp_path, monkeypatch, scored):
    cfg = write_tiny_config(tmp_path / "cfg.py", tiny_data, epochs=2)
    work_dir = tmp_path / "run"
    args = ["train", str(cfg), "--work-dir", str(work_dir), "--no-progress"]
    real_write = checkpoint_module.write_atomic
    writes: list[str] = []

    def killed_in_second_best_write(path, write):
        writes.append(path.name)
        if path.name == "best.pt" and writes.count("best.pt") == 2:
            (path.parent / ".best.pt.killed.tmp").write_bytes(b"half a checkpoint")
            raise KeyboardInterrupt  # the process dies here
        return real_write(path, write)

    monkeypatch.setattr(checkpoint_module, "write_atomic", killed_in_second_best_write)
    assert main(args) == 130
    # latest.pt never records a best that is not on disk: both say epoch 1, 0.1
    assert load_checkpoint(work_dir / "latest.pt").extra["epoch"] == 1
    assert best_map(work_dir / "latest.pt") == best_map(work_dir / "best.pt") == pytest.approx(0.1)

    monkeypatch.setattr(checkpoint_module, "write_atomic", real_write)
    assert main([*args, "--resume"]) == 0
    assert best_map(work_dir / "best.pt") == best_map(work_dir / "latest.pt") == pytest.approx(0.2)
    assert load_checkpoint(work_dir / "best.pt").extra["epoch"] == 2
    assert not list(work_dir.glob(".*.tmp"))  # the killed write's temporary file is gone


def test_resume_repairs_a_missing_best(tiny_data, tmp_path, scored, caplog):
    cfg = write_tiny_config(tmp_path / "cfg.py", tiny_data, epochs=2)
    work_dir = tmp_path / "run"
    args = ["train", str(cfg), "--work-dir", str(work_dir), "--no-progress"]
    assert main(args) == 0
    (work_dir / "best.pt").unlink()  # what a crash in the old write order left behind
    with caplog.at_level(logging.WARNING, logger="sdk.engine.checkpointing"):
        assert main([*args, "--resume"]) == 0
    assert best_map(work_dir / "best.pt") == pytest.approx(0.2)
    assert "restored it from" in caplog.text

    # a checkpoint of an older SDK (no best_epoch): the run log says epoch 2 was the best
    latest = load_checkpoint(work_dir / "latest.pt")
    del latest.extra["best_epoch"]
    checkpoint_module.save_checkpoint(work_dir / "latest.pt", meta=latest.meta, state_dict=latest.state_dict,
                                      extra=latest.extra)
    (work_dir / "best.pt").unlink()
    assert main([*args, "--resume"]) == 0
    assert best_map(work_dir / "best.pt") == pytest.approx(0.2)
