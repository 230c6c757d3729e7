"""What the README promises about determinism (issue 16, item 6): on one machine, with
the same seed, thread count and loader workers, training is bit-for-bit repeatable."""

from __future__ import annotations

import torch

from sdk.checkpoint import load_checkpoint
from sdk.cli.main import main


def _train(config, work_dir, *options: str) -> dict[str, torch.Tensor]:
    assert main(["train", str(config), "--work-dir", str(work_dir), "--no-validate", "--no-progress",
                 "--cfg-options", "schedule.epochs=1", *options]) == 0
    return load_checkpoint(work_dir / "latest.pt").state_dict


def test_same_seed_same_machine_gives_identical_weights(tiny_config, tmp_path):
    first = _train(tiny_config, tmp_path / "a")
    second = _train(tiny_config, tmp_path / "b")
    other_seed = _train(tiny_config, tmp_path / "c", "runtime.seed=1")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert not all(torch.equal(first[k], other_seed[k]) for k in first)
