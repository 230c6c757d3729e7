"""The run's JSON-lines log (``WORK_DIR/log.jsonl``) and its curve plot (``curves.png``).

One JSON object per line with a ``"type"``:
- ``"train"``: ``epoch`` (1-based), ``iter`` (in the epoch), ``step`` (global),
  ``lr``, ``loss`` and each loss term (``loss_*``) averaged over the last ``log_interval``
  iterations (and over ranks), ``iter_time``/``data_time`` seconds per iteration;
- ``"val"``: ``epoch`` and the twelve COCO numbers (``bbox_mAP`` ...);
- ``"info"``: free-form run facts (world size, lr after scaling, resume point).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Iterable


class RunLog:
    """Appends records to ``path``; a no-op on non-main ranks (``enabled=False``)."""

    def __init__(self, path: str | Path, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        record = {"time": round(time.time(), 3), **record}
        with self.path.open("a") as fh:
            fh.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        return read_log(self.path)

    def start_fresh(self) -> None:
        """Move the log of an earlier run in the same folder to ``log.prev.jsonl``."""
        if self.enabled and self.path.exists():
            self.path.replace(self.path.with_name(self.path.stem + ".prev.jsonl"))

    def truncate_after(self, epoch: int) -> None:
        """Drop records of epochs after ``epoch`` (used on resume: those epochs rerun)."""
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in self.records() if int(r.get("epoch", 0)) <= epoch]
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept))
        tmp.replace(self.path)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All records of a log file (missing file: none); a torn last line is skipped."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the process was killed mid-write
    return out


def plot_curves(records: Iterable[dict[str, Any]], out_png: str | Path) -> Path:
    """Plot training loss (per logged step) and validation mAP (per epoch) to a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    records = list(records)
    train = [r for r in records if r.get("type") == "train"]
    val = [r for r in records if r.get("type") == "val"]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(11, 4))
    if train:
        steps = [r["step"] for r in train]
        ax_loss.plot(steps, [r["loss"] for r in train], label="loss", linewidth=1.5)
        terms = sorted({k for r in train for k in r if k.startswith("loss_")})
        for term in terms:
            ax_loss.plot(steps, [r.get(term, float("nan")) for r in train], label=term, linewidth=0.8)
        ax_loss.set_yscale("log")
        ax_loss.legend(fontsize=8)
    ax_loss.set(title="training loss", xlabel="iteration")
    if val:
        epochs = [r["epoch"] for r in val]
        for key in ("bbox_mAP", "bbox_mAP_50", "bbox_mAP_75"):
            ax_map.plot(epochs, [r[key] for r in val], marker="o", label=key)
        ax_map.legend(fontsize=8)
    ax_map.set(title="validation (COCO bbox)", xlabel="epoch", ylim=(0, 1))
    ax_map.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_map.grid(alpha=0.3)
    fig.tight_layout()
    out_png = Path(out_png)
    tmp = out_png.with_name(out_png.stem + ".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png
