"""``sdk analyze logs``: curves of several runs and the training time, on hand-written logs."""

from __future__ import annotations

import json

import pytest

from sdk.analysis.logs import epoch_times, load_runs, train_time
from sdk.cli.main import main


def write_log(work_dir, iter_times, *, per_record=2, loss0=2.0):
    """A log of len(iter_times) epochs; epoch e logs ``len(iter_times[e])`` windows of
    ``per_record`` iterations with the given mean iteration times, then a val record."""
    work_dir.mkdir(parents=True, exist_ok=True)
    records, step = [{"type": "info", "epoch": 0, "world_size": 1}], 0
    for e, times in enumerate(iter_times, 1):
        for w, t in enumerate(times, 1):
            step += per_record
            records.append({"time": 1000.0 + step, "type": "train", "epoch": e, "iter": w * per_record, "step": step,
                            "lr": 0.01, "loss": loss0 / step, "loss_cls": loss0 / step / 2, "iter_time": t,
                            "data_time": t / 10})
        records.append({"type": "val", "epoch": e, "bbox_mAP": 0.1 * e, "bbox_mAP_50": 0.2 * e})
    (work_dir / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + '{"torn": ')
    return work_dir


def test_train_time_by_hand(tmp_path):
    run = load_runs([write_log(tmp_path / "run", [[0.1, 0.3], [0.5, 0.5], [0.2, 0.2]])])[0]
    epochs = epoch_times(run)
    assert [e["iterations"] for e in epochs] == [4, 4, 4]
    assert [e["seconds"] for e in epochs] == pytest.approx([0.8, 2.0, 0.8])
    assert [e["s_per_iter"] for e in epochs] == pytest.approx([0.2, 0.5, 0.2])
    summary = train_time(run)
    assert summary["slowest_epoch"] == 2 and summary["fastest_epoch"] == 1
    assert summary["s_per_iter"] == pytest.approx(3.6 / 12)
    assert summary["s_per_iter_std_over_epochs"] == pytest.approx(0.1414214, abs=1e-5)  # std of .2 .5 .2


def test_analyze_logs_overlays_runs(tmp_path, capsys):
    a = write_log(tmp_path / "a" / "run", [[0.1, 0.1], [0.1, 0.1]])
    b = write_log(tmp_path / "b" / "run", [[0.2, 0.2]], loss0=3.0)
    out = tmp_path / "curves.png"
    time_json = tmp_path / "time.json"
    argv = ["analyze", "logs", str(a), str(b / "log.jsonl"), "--keys", "loss", "loss_cls", "bbox_mAP",
            "--out", str(out), "--time-json", str(time_json)]
    assert main(argv) == 0
    assert out.stat().st_size > 5000
    runs = json.loads(time_json.read_text())["runs"]
    # same folder names: the labels use the parent folders
    assert [r["run"] for r in runs] == [str(a), str(b)] and runs[1]["iterations"] == 4
    assert "slowest epoch" in capsys.readouterr().out
    assert main(argv + ["--legend", "first", "second", "--title", "two runs"]) == 0
    assert [r["run"] for r in json.loads(time_json.read_text())["runs"]] == ["first", "second"]
    assert main(argv + ["--legend", "only-one"]) == 2
    assert "2 runs" in capsys.readouterr().err


def test_analyze_logs_errors(tmp_path, capsys):
    run = write_log(tmp_path / "run", [[0.1]])
    assert main(["analyze", "logs", str(run), "--keys", "bbox_nope", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err
    assert "bbox_nope" in err and "bbox_mAP" in err and err.count("\n") == 1
    assert main(["analyze", "logs", str(tmp_path / "missing")]) == 2
    assert "no training log" in capsys.readouterr().err
