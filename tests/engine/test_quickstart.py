"""``sdk quickstart`` on a miniature config: every step runs and fills ``summary.json``."""

from __future__ import annotations

import json

from sdk.cli.main import main
from sdk.cli.quickstart import STEPS, QuickstartContext, run_quickstart, step_data

MINI_CONFIG = '''
from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig
from sdk.preprocess import Preprocess

synthetic = dict(num_train=8, num_val=3, image_size=96, seed=1, size_jitter=0.1, object_size=(16.0, 48.0),
                 objects_per_image=(1, 3), clutter=0.2)
config = Config(
    model=ModelConfig(name="fcos_tiny"),
    data=DataConfig(batch_size=4, workers=0, preprocess=Preprocess(size=(96, 96))),
    schedule=ScheduleConfig(optimizer="adamw", lr=1e-3, epochs=1, warmup_iters=1, base_batch_size=4),
    runtime=RuntimeConfig(num_threads=1),
)
'''


def test_quickstart_runs_every_step(tmp_path, capsys):
    config = tmp_path / "mini.py"
    config.write_text(MINI_CONFIG)
    out = tmp_path / "qs"
    assert main(["quickstart", "--out", str(out), "--config", str(config), "--no-progress"]) == 0
    assert "bbox_mAP" in capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    for key in ("bbox_mAP", "bbox_mAP_50", "train_seconds", "checkpoint", "total_seconds"):
        assert key in summary, key
    assert list(summary["step_seconds"]) == [name for name, _ in STEPS]
    assert summary["data"]["reused"] is False and summary["data"]["num_train"] == 8
    assert (out / "train" / "best.pt").is_file() and summary["checkpoint"] == str(out / "train" / "best.pt")
    assert (out / "val_detections.jpg").read_bytes()[:2] == b"\xff\xd8"

    # a second run reuses the identical dataset instead of synthesizing it again
    ctx = QuickstartContext(out=out, config_path=config, progress=False)
    assert step_data(ctx)["data"]["reused"] is True
    config.write_text(MINI_CONFIG.replace("seed=1", "seed=2"))
    assert step_data(ctx)["data"]["reused"] is False


def test_steps_can_be_added(tmp_path):
    ctx = QuickstartContext(out=tmp_path, config_path=tmp_path / "unused.py", progress=False)
    summary = run_quickstart(ctx, [("one", lambda c: {"a": 1}), ("two", lambda c: {"b": c.summary["a"] + 1})])
    assert summary["a"] == 1 and summary["b"] == 2
    assert json.loads((tmp_path / "summary.json").read_text())["b"] == 2
