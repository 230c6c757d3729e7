"""``benchmarks/gpu``: the GPU check runs to completion on a CPU (``--dry-run``), so it is
known to work before a GPU is lent; its results are written as they are produced."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch

from sdk.benchmarks.gpu.check import main
from sdk.benchmarks.gpu.kernels import TINY, nms_agreement, nms_inputs, sdk_nms, torchvision_nms
from sdk.benchmarks.gpu.record import ResultLog

REPO = Path(__file__).resolve().parents[2]


def test_dry_run_writes_every_step(tmp_path, capsys):
    assert main(["--dry-run", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "dry-run.json").read_text())
    assert data["dry_run"] and data["environment"][0]["gpu"] == "none (CPU dry run)"
    ops = {(k["op"], k["batch"]) for k in data["kernels"]}
    assert ops == {(op, b) for op in ("batched_nms", "multilevel_roi_align") for b in TINY.batches}
    assert all(k["agreement"] in ("100.0% of torchvision's kept boxes", "max abs diff 0.00e+00") for k in data["kernels"])
    rows = {r["name"]: r for r in data["end_to_end"]}
    assert rows["sdk eager"]["status"] == "ok" and rows["onnxruntime fp32"]["status"] == "ok"
    assert rows["sdk eager amp"]["status"] == "ok" and rows["sdk eager amp"]["precision"] == "amp bfloat16"
    assert rows["onnxruntime fp32"]["speedup"] > 0  # against the sdk eager row measured before it
    assert {s["step"] for s in data["skipped"]} == {"gpu_tests", "end_to_end AOTInductor rows"}
    page = (tmp_path / "dry-run.md").read_text()
    assert "## Kernels vs torchvision" in page and "| fcos_tiny (dry run) | onnxruntime fp32 | fp32 | ok |" in page
    lines = (tmp_path / "dry-run.jsonl").read_text().splitlines()
    assert len(lines) == 1 + len(data["kernels"]) + len(data["end_to_end"]) + len(data["skipped"])


def test_without_a_gpu_it_says_to_use_the_dry_run(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the check would run for real")
    assert main(["--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--dry-run" in err


def test_results_are_on_disk_after_each_record(tmp_path):
    log = ResultLog(tmp_path, "x", command="run.sh", dry_run=True)
    log.add("environment", {"gpu": "G"})
    log.add("kernels", {"op": "batched_nms", "batch": 1, "size": "s", "sdk_ms": 1.0, "torchvision_ms": 2.0,
                        "speedup": 2.0, "agreement": "a"})
    assert json.loads((tmp_path / "x.json").read_text())["kernels"][0]["speedup"] == 2.0  # no close() needed
    assert "| batched_nms | 1 | s | 1.000 | 2.000 | 2.00x | a |" in (tmp_path / "x.md").read_text()
    with pytest.raises(ValueError, match="unknown section"):
        log.add("nope", {})


def test_nms_agreement_counts_what_torchvision_keeps():
    boxes, scores = nms_inputs(2, 50, 3, "cpu")
    reference = torchvision_nms(boxes, scores)
    assert nms_agreement(sdk_nms(boxes, scores), reference) == 1.0
    num, kept, sc, labels = sdk_nms(boxes, scores)
    num = num.clone()
    num[0, 0] = 0  # an output that lost image 0's detections agrees less
    assert nms_agreement((num, kept, sc, labels), reference) < 1.0


def test_run_sh_starts_the_check():
    out = subprocess.run([str(REPO / "benchmarks" / "gpu" / "run.sh"), "--help"], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0 and "--dry-run" in out.stdout
