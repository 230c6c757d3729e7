"""``sdk export`` / ``sdk verify`` / ``sdk test`` round trip, and the export errors.

One random-weight fcos_tiny checkpoint is exported once through the CLI (with
``--verify``); verify then runs on synthetic images, on a tiny COCO dataset (both
mAPs) and against a different checkpoint (must fail).
"""

from __future__ import annotations

import importlib.util
import os
import json

import pytest
import torch
from deploy_support import save_random_checkpoint

from sdk.cli.main import main
from sdk.manifest import load_model_dir


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path, _ = save_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "fcos.pt", "fcos_tiny")
    return path


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "fcos_dir"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["export", str(checkpoint), "--out", str(out), "--max-batch", "4", "--score-thr", "0.1",
                   "--max-det", "50", "--verify"])
    finally:
        torch.set_num_threads(threads)
    assert rc == 0
    return out


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    from sdk.data.synthetic import generate_synthetic_coco

    return generate_synthetic_coco(tmp_path_factory.mktemp("coco"), num_train=1, num_val=6, image_size=224,
                                   seed=0, progress=False)


def test_export_writes_model_dir_with_overrides(exported, checkpoint):
    manifest = load_model_dir(exported).manifest
    assert manifest.backend == "onnxruntime" and manifest.flavor == "onnxruntime"
    assert manifest.postprocess == {"score_thr": 0.1, "iou_thr": 0.6, "max_det": 50}
    assert manifest.input.max_batch == 4 and manifest.model_name == "fcos_tiny"
    assert manifest.source_checkpoint_sha256 is not None
    assert json.loads((exported / "export.json").read_text())["source_checkpoint"] == str(checkpoint.resolve())


def test_verify_defaults_to_the_recorded_checkpoint(exported, tmp_path, capsys):
    report = tmp_path / "report.json"
    assert main(["verify", str(exported), "--json", str(report)]) == 0
    data = json.loads(report.read_text())
    assert data["passed"] and data["eager_detections"] > 0 and data["match_ratio"] >= 0.98
    assert "PASSED" in capsys.readouterr().out


def test_verify_and_test_on_a_dataset(exported, coco, tmp_path):
    report = tmp_path / "report.json"
    assert main(["verify", str(exported), "--dataset", str(coco.val_json), "--json", str(report),
                 "--no-progress"]) == 0
    data = json.loads(report.read_text())
    assert data["eager_bbox_mAP"] is not None and abs(data["mAP_delta"]) <= 0.002
    metrics = tmp_path / "metrics.json"
    assert main(["test", str(exported), "--dataset", str(coco.val_json), "--metrics-out", str(metrics),
                 "--workers", "0", "--no-progress"]) == 0
    assert json.loads(metrics.read_text())["bbox_mAP"] == pytest.approx(data["export_bbox_mAP"], abs=1e-9)


def test_verify_fails_against_another_checkpoint(exported, tmp_path, capsys):
    other, _ = save_random_checkpoint(tmp_path / "other.pt", "fcos_tiny", seed=5)
    assert main(["verify", str(exported), "--checkpoint", str(other)]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_verify_without_a_checkpoint_says_what_to_do(exported, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    (copy / "export.json").unlink()  # now unlisted... the manifest hash check must notice
    assert main(["verify", str(copy)]) == 2
    assert "export.json" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_backend_without_tensorrt_fails_with_one_line(checkpoint, tmp_path, capsys):
    assert main(["export", str(checkpoint), "--backend", "tensorrt", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and err.count("\n") == 0 and "tensorrt" in err.lower()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--input-size", "320"], "--input-size: expected HxW"),
        (["--max-batch", "0"], "--max-batch must be >= 1"),
        (["--backend", "tensorrt", "--int8"], "int8 needs real images to calibrate on"),
    ],
)
def test_bad_export_options(checkpoint, tmp_path, capsys, args, message):
    assert main(["export", str(checkpoint), "--out", str(tmp_path / "out"), *args]) == 2
    assert message in capsys.readouterr().err


def test_export_of_a_missing_checkpoint(tmp_path, capsys):
    assert main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "out")]) == 2
    assert "nope.pt" in capsys.readouterr().err


def test_auto_backend_on_cpu_chooses_onnxruntime(monkeypatch):
    from sdk.converters import backend_select
    from sdk.converters.export import ExportOptions, resolve_backend

    monkeypatch.setattr(backend_select, "cuda_gpu_available", lambda: False)
    resolved = resolve_backend(ExportOptions(backend="auto"))
    assert (resolved.backend, resolved.device) == ("onnxruntime", "cpu")
    assert resolve_backend(ExportOptions(backend="aoti", device="cpu")).backend == "aoti"
    monkeypatch.setattr(backend_select, "cuda_gpu_available", lambda: True)
    monkeypatch.setattr(backend_select, "tensorrt_installed", lambda: False)
    assert resolve_backend(ExportOptions(backend="auto")).backend == "aoti"
    assert resolve_backend(ExportOptions(backend="auto", device="cpu")).backend == "onnxruntime"


# -- atomic re-export, signing (issue 15) -----------------------------------------------------
def test_signed_re_export_replaces_the_model_dir_atomically(exported, checkpoint, tmp_path, capsys):
    import shutil
    import subprocess
    import sys

    from sdk.detector import Detector
    from sdk.signing import generate_keypair

    out = tmp_path / "models" / "fcos_dir"
    shutil.copytree(exported, out)
    before = load_model_dir(out).manifest.created_at
    # a staging folder of an export killed earlier (its process is gone) and one of a live export
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = out.parent / f".fcos_dir.staging-{int(dead.stdout)}-abc"
    live = out.parent / f".fcos_dir.staging-{os.getpid()}-xyz"
    for folder in (stale, live):
        folder.mkdir()
    generate_keypair(tmp_path / "k.key", tmp_path / "k.pub")
    assert main(["export", str(checkpoint), "--out", str(out), "--max-batch", "2", "--sign", str(tmp_path / "k.key")]) == 0
    assert sorted(p.name for p in out.parent.iterdir()) == [live.name, "fcos_dir"]  # stale one removed
    det = Detector(out, trusted_keys=[tmp_path / "k.pub"])
    assert det.manifest.max_batch == 2 and det.manifest.created_at >= before
    assert not any(p.name.startswith(".export-") for p in out.iterdir())


def test_a_failed_re_export_leaves_the_previous_model_dir(exported, checkpoint, tmp_path, monkeypatch):
    """A kill mid-export used to leave a new model.onnx under the old manifest (unloadable)."""
    import shutil

    from sdk.converters import export as export_module

    out = tmp_path / "fcos_dir"
    shutil.copytree(exported, out)

    def dies_midway(model, meta, out_dir, options, ckpt):
        (out_dir / "model.onnx").write_bytes(b"half a graph")
        raise KeyboardInterrupt  # what a kill looks like from inside

    monkeypatch.setitem(export_module.EXPORTERS, "onnxruntime", dies_midway)
    assert main(["export", str(checkpoint), "--out", str(out)]) == 130  # "interrupted"
    assert load_model_dir(out).manifest.max_batch == 4  # the previous export, intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fcos_dir"]  # no staging left behind
