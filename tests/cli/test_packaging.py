"""The package works installed, not only from a checkout (issue 16, item 1): the
quickstart's config ships as package data (``sdk.configs``)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from sdk.cli.main import main
from sdk.cli.quickstart import default_config

REPO = Path(__file__).resolve().parents[2]
# The shrunk quickstart: a few small images, one epoch (seconds instead of ten minutes).
SHRUNK = ["synthetic.num_train=8", "synthetic.num_val=3", "synthetic.image_size=96", "schedule.epochs=1",
          "schedule.warmup_iters=1", "data.workers=0", "runtime.num_threads=1"]


def test_quickstart_config_is_package_data():
    import importlib.util

    spec = importlib.util.find_spec("sdk.configs")
    assert spec is not None and spec.origin is not None
    assert default_config() == Path(spec.origin).parent / "quickstart_tiny.py"
    assert default_config().is_file()


def test_quickstart_with_a_missing_config_is_one_line(tmp_path, capsys):
    rc = main(["quickstart", "--out", str(tmp_path / "qs"), "--config", str(tmp_path / "nope.py")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("error: quickstart config not found") and "\n" not in err


def test_quickstart_rejects_unknown_synthetic_keys(tmp_path, capsys):
    rc = main(["quickstart", "--out", str(tmp_path / "qs"), "--cfg-options", "synthetic.num_trian=8"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "synthetic.num_trian: unknown key" in err and "num_train" in err


@pytest.mark.slow
def test_wheel_installed_in_a_fresh_venv_runs_the_quickstart_elsewhere(tmp_path):
    """Build the wheel, install it into a new venv, run ``sdk quickstart`` (help, then a
    shrunk run) from an unrelated folder. ~30 s on two cores."""
    from importlib.metadata import version

    if int(version("setuptools").split(".")[0]) < 77:
        pytest.skip("building the wheel needs setuptools>=77 here (make install upgrades it)")
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "runs", "work_dirs", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(tmp_path / "dist"), str(source)], check=True, timeout=300)
    wheel = next((tmp_path / "dist").glob("sdk_detect-*.whl"))

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    bin_dir = venv / "bin"
    purelib = subprocess.run([bin_dir / "python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # The dependencies (torch, onnxruntime, ...) come from this environment's site-packages;
    # .pth lines add them as plain paths, so an editable install's hook there stays inactive.
    deps = [p for p in sys.path if p.endswith("site-packages")] or [sysconfig.get_paths()["purelib"]]
    Path(purelib, "zz_test_deps.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([bin_dir / "python", "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--ignore-installed", str(wheel)], check=True, timeout=300)

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ""}
    where = subprocess.run([bin_dir / "python", "-c", "import sdk.cli.quickstart as q; print(q.default_config())"],
                           cwd=elsewhere, env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert where.startswith(purelib), where  # the installed copy, not the checkout
    help_run = subprocess.run([bin_dir / "sdk", "quickstart", "--help"], cwd=elsewhere, env=env,
                              capture_output=True, text=True, timeout=120)
    assert help_run.returncode == 0 and "--cfg-options" in help_run.stdout, help_run.stderr
    run = subprocess.run([bin_dir / "sdk", "quickstart", "--out", "qs", "--no-progress", "--cfg-options", *SHRUNK],
                         cwd=elsewhere, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
    summary = json.loads((elsewhere / "qs" / "summary.json").read_text())
    assert summary["data"]["num_train"] == 8 and summary["epochs"] == 1
    assert (elsewhere / "qs" / "model_dir" / "manifest.json").is_file() and "export_bbox_mAP" in summary
