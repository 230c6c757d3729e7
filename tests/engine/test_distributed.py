"""Two-process DDP training on CPU (gloo) through ``torchrun``."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from sdk.checkpoint import load_checkpoint

from engine_support import write_tiny_config


def test_two_process_ddp_trains_and_evaluates(tiny_data, tmp_path):
    cfg = write_tiny_config(tmp_path / "cfg.py", tiny_data, epochs=2)
    work_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "sdk.cli.main", "train", str(cfg), "--work-dir", str(work_dir), "--no-progress", "--auto-scale-lr"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = [json.loads(line) for line in (work_dir / "log.jsonl").read_text().splitlines()]
    info = [r for r in log if r["type"] == "info"][0]
    assert info["world_size"] == 2 and info["total_batch_size"] == 8
    assert info["lr"] == pytest.approx(2e-3)  # linear scaling: 1e-3 * 8 / base_batch_size 4
    # 8 images over 2 ranks with batch 4: one iteration per epoch, logged once (rank 0)
    assert [r["step"] for r in log if r["type"] == "train"] == [1, 2]
    val = [r for r in log if r["type"] == "val"]
    assert [r["epoch"] for r in val] == [1, 2] and all(0 <= r["bbox_mAP"] <= 1 for r in val)
    assert all(r["images"] == 4 for r in val)  # detections of both ranks' val shards were gathered
    ckpt = load_checkpoint(work_dir / "best.pt")
    assert ckpt.extra["world_size"] == 2
    assert not any(k.startswith("module.") for k in ckpt.state_dict)  # saved unwrapped from DDP
