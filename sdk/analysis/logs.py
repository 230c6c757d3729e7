"""Curves and training time from ``log.jsonl`` files (MMDetection's ``analyze_logs.py``).

A run is a work dir holding ``log.jsonl`` (``sdk train``'s JSON-lines log, see
``sdk.engine.run_log``) or the file itself. Keys of ``"train"`` records (``loss``,
``loss_*``, ``lr``, ``iter_time``, ``data_time``) are plotted against the global
iteration, keys of ``"val"`` records (``bbox_mAP`` ...) against the epoch; several
runs are overlaid, one colour each.

Training time: a ``"train"`` record averages ``iter_time`` over the iterations since
the previous record of its epoch (``iter`` counts them), so an epoch's training
seconds are ``sum(iter_time * iterations)`` and its seconds per iteration that sum
over its iterations (validation is not included).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sdk.analysis.common import pyplot, save_figure
from sdk.engine.run_log import read_log
from sdk.errors import InputError

LOG_NAME = "log.jsonl"
DEFAULT_KEYS = ("loss", "bbox_mAP")


@dataclass
class Run:
    """One run's log: ``label`` (the work dir's name, made unique), its records."""

    label: str
    path: Path
    records: list[dict[str, Any]] = field(default_factory=list)

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("type") == kind]

    def keys(self, kind: str) -> list[str]:
        """Numeric keys of this run's ``kind`` records, first-seen order."""
        skip = {"time", "type", "epoch", "iter", "step", "images"}
        out: dict[str, None] = {}
        for r in self.of_type(kind):
            for k, v in r.items():
                if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool):
                    out[k] = None
        return list(out)


def load_runs(paths: Sequence[str | Path], legend: Sequence[str] | None = None) -> list[Run]:
    """The runs of ``paths`` (work dirs or ``.jsonl`` files), labelled by ``legend`` or
    their folder names; ``InputError`` for a path with no log or a log with no records."""
    if legend is not None and len(legend) != len(paths):
        raise InputError(f"--legend has {len(legend)} names for {len(paths)} runs")
    runs: list[Run] = []
    for raw in paths:
        path = Path(raw)
        file = path / LOG_NAME if path.is_dir() else path
        if not file.is_file():
            raise InputError(f"no training log at {file} (pass a work dir of `sdk train` or its {LOG_NAME})")
        records = read_log(file)
        if not records:
            raise InputError(f"{file} holds no log records")
        label = (file.parent.name if file.name == LOG_NAME else file.stem) or str(file)
        runs.append(Run(label, file, records))
    seen: dict[str, int] = {}
    for run in runs:  # same folder names (work_dirs/a/run, work_dirs/b/run): use more of the path
        seen[run.label] = seen.get(run.label, 0) + 1
    for i, run in enumerate(runs):
        if legend is not None:
            run.label = legend[i]
        elif seen[run.label] > 1:
            run.label = str(run.path.parent)
    return runs


def plot_logs(runs: Sequence[Run], keys: Sequence[str] | None, out: str | Path, title: str | None = None) -> Path:
    """One panel per key, the runs overlaid; ``InputError`` for a key no run logged."""
    plt = pyplot()
    keys = list(keys) if keys else [k for k in DEFAULT_KEYS if any(k in r.keys("train") + r.keys("val") for r in runs)]
    if not keys:
        raise InputError("none of the logs has 'loss' or 'bbox_mAP': name the keys to plot with --keys")
    available = sorted({k for r in runs for k in r.keys("train") + r.keys("val")})
    unknown = [k for k in keys if k not in available]
    if unknown:
        raise InputError(f"no log has the key(s) {unknown}; available: {', '.join(available)}")
    cols = min(len(keys), 2)
    rows = (len(keys) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows), squeeze=False)
    for ax, key in zip(axes.flat, keys):
        for i, run in enumerate(runs):
            color = f"C{i % 10}"
            if key in run.keys("train"):
                recs = [r for r in run.of_type("train") if key in r]
                ax.plot([r["step"] for r in recs], [r[key] for r in recs], color=color, linewidth=1.2, label=run.label)
                ax.set_xlabel("iteration")
                if key.startswith("loss") and all(r[key] > 0 for r in recs):
                    ax.set_yscale("log")
            if key in run.keys("val"):
                recs = [r for r in run.of_type("val") if key in r]
                ax.plot([r["epoch"] for r in recs], [r[key] for r in recs], color=color, marker="o", label=run.label)
                ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(keys):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, out)


def epoch_times(run: Run) -> list[dict[str, float]]:
    """Per epoch: ``epoch``, ``iterations``, ``seconds`` (training only) and
    ``s_per_iter``, ``data_s_per_iter``, from the ``"train"`` records."""
    by_epoch: dict[int, dict[str, float]] = {}
    last_iter: dict[int, int] = {}
    for r in run.of_type("train"):
        if "iter_time" not in r:
            continue
        epoch, it = int(r["epoch"]), int(r["iter"])
        n = it - last_iter.get(epoch, 0)
        last_iter[epoch] = it
        if n <= 0:  # a resumed epoch logged again: start its count over
            by_epoch.pop(epoch, None)
            n = it
        acc = by_epoch.setdefault(epoch, {"epoch": epoch, "iterations": 0, "seconds": 0.0, "data_seconds": 0.0})
        acc["iterations"] += n
        acc["seconds"] += float(r["iter_time"]) * n
        acc["data_seconds"] += float(r.get("data_time", 0.0)) * n
    out = []
    for epoch in sorted(by_epoch):
        acc = by_epoch[epoch]
        out.append({
            "epoch": epoch, "iterations": int(acc["iterations"]), "seconds": round(acc["seconds"], 3),
            "s_per_iter": round(acc["seconds"] / acc["iterations"], 5),
            "data_s_per_iter": round(acc["data_seconds"] / acc["iterations"], 5),
        })
    return out


def train_time(run: Run) -> dict[str, Any]:
    """MMDetection's ``cal_train_time``: slowest and fastest epoch, the standard
    deviation of the epochs' seconds per iteration, the average over all iterations,
    and the per-epoch table (``epoch_times``)."""
    epochs = epoch_times(run)
    if not epochs:
        return {"run": run.label, "epochs": []}
    per_iter = np.array([e["s_per_iter"] for e in epochs])
    iters = sum(e["iterations"] for e in epochs)
    return {
        "run": run.label,
        "iterations": iters,
        "train_seconds": round(sum(e["seconds"] for e in epochs), 2),
        "s_per_iter": round(sum(e["seconds"] for e in epochs) / iters, 5),
        "slowest_epoch": int(epochs[int(per_iter.argmax())]["epoch"]),
        "fastest_epoch": int(epochs[int(per_iter.argmin())]["epoch"]),
        "s_per_iter_std_over_epochs": round(float(per_iter.std()), 5),
        "epochs": epochs,
    }


def format_train_time(summary: dict[str, Any]) -> str:
    if not summary["epochs"]:
        return f"{summary['run']}: no iteration times logged"
    lines = [
        f"{summary['run']}: {summary['iterations']} iterations, {summary['train_seconds']:.1f} s of training, "
        f"{summary['s_per_iter']:.4f} s/iter on average",
        f"  slowest epoch {summary['slowest_epoch']}, fastest epoch {summary['fastest_epoch']}, "
        f"std of s/iter over epochs {summary['s_per_iter_std_over_epochs']:.4f}",
        "  epoch  iters  seconds  s/iter  data s/iter",
    ]
    lines += [f"  {e['epoch']:>5}  {e['iterations']:>5}  {e['seconds']:>7.1f}  {e['s_per_iter']:.4f}  {e['data_s_per_iter']:.4f}"
              for e in summary["epochs"]]
    return "\n".join(lines)
