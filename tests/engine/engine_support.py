"""Helpers of the training tests: a tiny config writer and an ``sdk`` subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

TINY_SIZE = 96


def write_tiny_config(path: Path, data: Path, *, epochs: int = 2, classes: tuple[str, ...] | None = None) -> Path:
    """A config training ``fcos_tiny`` at 96 px on ``data`` (synthetic layout)."""
    path.write_text(f'''
from sdk.config import Config, DataConfig, ModelConfig, RuntimeConfig, ScheduleConfig
from sdk.preprocess import Preprocess

config = Config(
    model=ModelConfig(name="fcos_tiny", classes={classes!r}),
    data=DataConfig(
        train_ann="{data}/annotations/train.json", train_images="{data}/images",
        val_ann="{data}/annotations/val.json", val_images="{data}/images",
        batch_size=4, val_batch_size=4, workers=0, preprocess=Preprocess(size=({TINY_SIZE}, {TINY_SIZE})),
    ),
    schedule=ScheduleConfig(optimizer="adamw", lr=1e-3, epochs={epochs}, warmup_iters=2, lr_schedule="cosine",
                            grad_clip=10.0, base_batch_size=4),
    runtime=RuntimeConfig(device="cpu", log_interval=1, num_threads=1),
)
''')
    return path


def sdk_subprocess(*args: str, **kwargs) -> subprocess.Popen:
    """``python -m sdk.cli.main ARGS`` in a child process (one torch thread)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "sdk.cli.main", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)
